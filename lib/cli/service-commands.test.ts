import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { Service } from '../types/service.js'
import type { Task } from '../types/task.js'
import { main } from './swarmctl.js'
import { readSecretData } from './secret-commands.js'

interface Req {
  method: string
  url: string
  body: unknown
}

const NOW = new Date().toISOString()

function service(id: string, name: string, mode: Service['Spec']['Mode']): Service {
  return {
    ID: id,
    Version: { Index: 7 },
    CreatedAt: NOW,
    UpdatedAt: NOW,
    Spec: { Name: name, TaskTemplate: { ContainerSpec: { Image: 'busybox:latest' } }, Mode: mode, UpdateConfig: { Monitor: 200e6 } },
    Endpoint: { Spec: {} },
  }
}

const runningTask: Task = {
  ID: 'task1aaaaaaaaaaaaaaaaaaaa',
  Version: { Index: 1 },
  CreatedAt: NOW,
  UpdatedAt: NOW,
  Labels: {},
  Spec: { ContainerSpec: { Image: 'busybox:latest' } },
  ServiceID: 'websvcid0000000000000000',
  Slot: 1,
  NodeID: 'node1',
  Status: { Timestamp: NOW, State: 'running', Message: 'started' },
  DesiredState: 'running',
}

function frame(stream: number, payload: string): Buffer {
  const h = Buffer.alloc(8)
  h[0] = stream
  h.writeUInt32BE(Buffer.byteLength(payload), 4)
  return Buffer.concat([h, Buffer.from(payload)])
}

/** A fake daemon on a unix socket: enough of the Engine API for the commands. */
async function fakeDaemon(t: Test): Promise<{ host: string; reqs: Req[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmctl-svc-'))
  const sock = join(dir, 'api.sock')
  const reqs: Req[] = []
  const web = service('websvcid0000000000000000', 'web', { Replicated: { Replicas: 1 } })
  const agent = service('agentsvcid00000000000000', 'agent', { Global: {} })
  const services = [web, agent]
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify(body))
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = ''
    req.on('data', d => (data += d))
    req.on('end', () => {
      const url = decodeURIComponent(req.url!.replace(/^\/v1\.41/, ''))
      reqs.push({ method: req.method!, url, body: data ? JSON.parse(data) : undefined })
      const path = url.split('?')[0]!
      const find = (ref: string) => services.find(s => s.ID === ref || s.Spec.Name === ref)
      let m: RegExpExecArray | null
      if (req.method === 'POST' && path === '/services/create') return json(res, 201, { ID: 'newsvcid', Warnings: null })
      if (req.method === 'GET' && path === '/services') return json(res, 200, services)
      if (req.method === 'GET' && path === '/services/newsvcid') return json(res, 200, { ...web, ID: 'newsvcid' })
      if ((m = /^\/services\/([^/]+)\/logs$/.exec(path))) {
        res.writeHead(200, { 'Content-Type': 'application/vnd.docker.multiplexed-stream' })
        const ctx = `com.docker.swarm.node.id=node1,com.docker.swarm.service.id=${web.ID},com.docker.swarm.task.id=${runningTask.ID}`
        res.write(frame(1, `${ctx} hello\n`))
        return res.end(frame(2, `${ctx} oops\n`))
      }
      if ((m = /^\/services\/([^/]+)\/update$/.exec(path))) return find(m[1]!) ? json(res, 200, { Warnings: null }) : json(res, 404, { message: 'nope' })
      if ((m = /^\/services\/([^/]+)$/.exec(path))) {
        const s = find(m[1]!)
        if (req.method === 'DELETE') return s ? json(res, 200, {}) : json(res, 404, { message: `service ${m[1]} not found` })
        return s ? json(res, 200, s) : json(res, 404, { message: `service ${m[1]} not found` })
      }
      if (path === '/tasks') return json(res, 200, [runningTask])
      if (path === `/tasks/${runningTask.ID}`) return json(res, 200, runningTask)
      if (path === '/nodes') return json(res, 200, [{ ID: 'node1', Spec: {}, Description: { Hostname: 'host1' }, Status: { State: 'ready' } }])
      if (path === '/nodes/node1') return json(res, 200, { ID: 'node1', Spec: {}, Description: { Hostname: 'host1' }, Status: { State: 'ready' } })
      if (path === '/secrets') return json(res, 200, [{ ID: 'dbsecretid', Version: { Index: 1 }, CreatedAt: NOW, UpdatedAt: NOW, Spec: { Name: 'db' } }])
      if (path === '/secrets/create') return json(res, 201, { ID: 'newsecretid' })
      if (path === '/secrets/db' || path === '/secrets/dbsecretid') {
        if (req.method === 'DELETE') return json(res, 204, {})
        return json(res, 200, { ID: 'dbsecretid', Version: { Index: 1 }, CreatedAt: '2024-01-02T03:04:05Z', UpdatedAt: '2024-01-02T03:04:05Z', Spec: { Name: 'db', Labels: {} } })
      }
      if (path.startsWith('/secrets/')) return json(res, 404, { message: `secret ${path.slice(9)} not found` })
      json(res, 404, { message: `page not found: ${path}` })
    })
  })
  await new Promise<void>(r => server.listen(sock, r))
  t.teardown(async () => {
    await new Promise(r => server.close(r))
    rmSync(dir, { recursive: true, force: true })
  })
  return { host: `unix://${sock}`, reqs }
}

/** Runs swarmctl in-process, capturing what it prints. */
async function run(host: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const ow = process.stdout.write.bind(process.stdout)
  const ew = process.stderr.write.bind(process.stderr)
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += s.toString()), true)) as typeof process.stdout.write
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += s.toString()), true)) as typeof process.stderr.write
  try {
    const code = await main(['-H', host, ...args])
    return { code, stdout, stderr }
  } finally {
    process.stdout.write = ow
    process.stderr.write = ew
  }
}

t.test('create: IMAGE then the command with its own flags', async t => {
  const d = await fakeDaemon(t)
  const r = await run(d.host, 'service', 'create', '--name', 'x', '-d', '-e', 'A=1', '-p', '8080:80', 'busybox', 'sh', '-c', 'echo hi', '-e')
  t.same(r, { code: 0, stdout: 'newsvcid\n', stderr: '' })
  const body = d.reqs.find(q => q.url === '/services/create')!.body as Service['Spec']
  t.equal(body.Name, 'x')
  t.same(body.TaskTemplate.ContainerSpec.Args, ['sh', '-c', 'echo hi', '-e'])
  t.same(body.TaskTemplate.ContainerSpec.Env, ['A=1'])
  t.same(body.EndpointSpec?.Ports, [{ Protocol: 'tcp', PublishMode: 'ingress', TargetPort: 80, PublishedPort: 8080 }])
})

t.test('create: secret names become IDs through GET /secrets', async t => {
  const d = await fakeDaemon(t)
  t.equal((await run(d.host, 'service', 'create', '-d', '--secret', 'source=db,target=pw', 'busybox')).code, 0)
  t.match(d.reqs.find(q => q.url.startsWith('/secrets'))!.url, '/secrets?filters={"name":{"db":true}}')
  const body = d.reqs.find(q => q.url === '/services/create')!.body as Service['Spec']
  t.same(body.TaskTemplate.ContainerSpec.Secrets, [{ SecretID: 'dbsecretid', SecretName: 'db', File: { Name: 'pw', UID: '0', GID: '0', Mode: 0o444 } }])
  const missing = await run(d.host, 'service', 'create', '-d', '--secret', 'nope', 'busybox')
  t.same(missing, { code: 1, stdout: '', stderr: 'secret not found: nope\n' })
})

t.test('create without -d follows progress to "verify: Service converged"', async t => {
  const d = await fakeDaemon(t)
  const r = await run(d.host, 'service', 'create', 'busybox')
  t.equal(r.code, 0)
  t.equal(
    r.stdout,
    'newsvcid\noverall progress: 0 out of 1 tasks\n1/1:  \noverall progress: 1 out of 1 tasks\nverify: Waiting 1 seconds to verify that tasks are stable...\nverify: Service converged\n',
  )
  t.match(d.reqs.find(q => q.url.startsWith('/tasks?'))!.url, '"service":{"newsvcid":true}')
})

t.test('scale: replicated services scale, global ones are refused', async t => {
  const d = await fakeDaemon(t)
  const r = await run(d.host, 'service', 'scale', '-d', 'web=3', 'agent=2', 'web=x')
  t.equal(r.code, 1)
  t.equal(r.stdout, 'web scaled to 3\n')
  t.equal(r.stderr, 'agent: scale can only be used with replicated or replicated-job mode\nweb: invalid replicas value x: strconv.ParseUint: parsing "x": invalid syntax\n')
  const upd = d.reqs.find(q => q.method === 'POST' && q.url.includes('/update'))!
  t.equal(upd.url, '/services/websvcid0000000000000000/update?version=7')
  t.same((upd.body as Service['Spec']).Mode, { Replicated: { Replicas: 3 } })
  const bad = await run(d.host, 'service', 'scale', 'web')
  t.equal(bad.code, 1)
  t.match(bad.stderr, "invalid scale specifier 'web'.")
})

t.test('update and rollback', async t => {
  const d = await fakeDaemon(t)
  t.same(await run(d.host, 'service', 'update', '-d', '--image', 'busybox:2', '--env-add', 'B=2', 'web'), { code: 0, stdout: 'web\n', stderr: '' })
  const body = d.reqs.at(-1)!.body as Service['Spec']
  t.equal(body.TaskTemplate.ContainerSpec.Image, 'busybox:2')
  t.same(body.TaskTemplate.ContainerSpec.Env, ['B=2'])
  const both = await run(d.host, 'service', 'update', '--rollback', '--image', 'x', 'web')
  t.same(both, { code: 1, stdout: '', stderr: 'other flags may not be combined with --rollback\n' })
  t.same(await run(d.host, 'service', 'rollback', '-d', 'web'), { code: 0, stdout: 'web\n', stderr: '' })
  t.equal(d.reqs.at(-1)!.url, '/services/websvcid0000000000000000/update?version=7&rollback=previous')
})

t.test('ls, ps and inspect', async t => {
  const d = await fakeDaemon(t)
  const ls = await run(d.host, 'service', 'ls')
  t.equal(ls.stdout, 'ID             NAME      MODE         REPLICAS   IMAGE            PORTS\nagentsvcid00   agent     global       0/0        busybox:latest   \nwebsvcid0000   web       replicated   1/1        busybox:latest   \n')
  const ps = await run(d.host, 'service', 'ps', 'web')
  t.match(ps.stdout, /^ID +NAME +IMAGE +NODE +DESIRED STATE +CURRENT STATE +ERROR +PORTS\ntask1aaaaaaa   web\.1 +busybox:latest   host1 +Running +Running less than a second ago +\n$/)
  const missing = await run(d.host, 'service', 'ps', 'web', 'nope')
  t.equal(missing.code, 1)
  t.equal(missing.stderr, 'no such service: nope\n')
  const inspect = await run(d.host, 'service', 'inspect', 'web', 'nope')
  t.equal(inspect.code, 1)
  t.equal(JSON.parse(inspect.stdout)[0].ID, 'websvcid0000000000000000')
  t.match(inspect.stdout, /^\[\n {4}\{\n {8}"ID"/)
  t.equal(inspect.stderr, 'no such service: nope\n')
  t.match(d.reqs.find(q => q.url.startsWith('/services/web?'))!.url, 'insertDefaults=true')
  const pretty = await run(d.host, 'service', 'inspect', '--pretty', 'web')
  t.match(pretty.stdout, '\nID:\t\twebsvcid0000000000000000\nName:\t\tweb\nService Mode:\tReplicated\n Replicas:\t1\n')
})

t.test('logs: demuxed lines with the task prefix, stderr kept apart', async t => {
  const d = await fakeDaemon(t)
  const r = await run(d.host, 'service', 'logs', 'web')
  t.same(r, { code: 0, stdout: 'web.1.task1aaaaaaa@host1    | hello\n', stderr: 'web.1.task1aaaaaaa@host1    | oops\n' })
  t.equal(d.reqs.find(q => q.url.includes('/logs'))!.url, '/services/web/logs?stdout=1&stderr=1&tail=all&details=1')
  const raw = await run(d.host, 'service', 'logs', '--raw', '-f', '--tail', '5', 'web')
  t.match(raw.stdout, /^com\.docker\.swarm\.node\.id=node1,.* hello\n$/)
  t.equal(d.reqs.filter(q => q.url.includes('/logs'))[1]!.url, '/services/web/logs?stdout=1&stderr=1&follow=1&tail=5')
  const none = await run(d.host, 'service', 'logs', 'nope')
  t.same(none, { code: 1, stdout: '', stderr: 'no such task or service: nope\n' })
})

t.test('rm prints each name and joins the errors', async t => {
  const d = await fakeDaemon(t)
  t.same(await run(d.host, 'service', 'rm', 'web', 'nope', 'agent'), {
    code: 1,
    stdout: 'web\nagent\n',
    stderr: 'Error response from daemon: service nope not found\n',
  })
})

t.test('secrets: create from a file, ls, rm', async t => {
  const d = await fakeDaemon(t)
  const dir = mkdtempSync(join(tmpdir(), 'swarmctl-secret-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'pw'), 's3cret')
  t.same(await run(d.host, 'secret', 'create', '-l', 'a=b', 'db', join(dir, 'pw')), { code: 0, stdout: 'newsecretid\n', stderr: '' })
  t.same(d.reqs.at(-1)!.body, { Name: 'db', Labels: { a: 'b' }, Data: Buffer.from('s3cret').toString('base64') })
  const ls = await run(d.host, 'secret', 'ls')
  t.match(ls.stdout, /^ID +NAME +DRIVER +CREATED +UPDATED\ndbsecretid +db +Less than a second ago +Less than a second ago\n$/)
  t.same(await run(d.host, 'secret', 'ls', '-q'), { code: 0, stdout: 'dbsecretid\n', stderr: '' })
  t.same(await run(d.host, 'secret', 'create', 'db'), { code: 1, stdout: '', stderr: 'secret file is required\n' })
  const inspect = await run(d.host, 'secret', 'inspect', 'db', 'nope')
  t.equal(inspect.code, 1)
  t.equal(JSON.parse(inspect.stdout)[0].Spec.Name, 'db')
  t.equal(inspect.stderr, 'Error response from daemon: secret nope not found\n')
  t.same(await run(d.host, 'secret', 'inspect', '--pretty', 'db'), {
    code: 0,
    stdout: 'ID:              dbsecretid\nName:              db\nDriver:            \nCreated at:        2024-01-02 03:04:05 +0000 utc\nUpdated at:        2024-01-02 03:04:05 +0000 utc\n',
    stderr: '',
  })
  t.same(await run(d.host, 'secret', 'rm', 'db', 'nope'), { code: 1, stdout: 'db\n', stderr: 'Error response from daemon: secret nope not found\n' })
})

t.test('secret data from stdin, never empty', async t => {
  t.equal((await readSecretData('-', Readable.from([Buffer.from('abc')]))).toString(), 'abc')
  await t.rejects(readSecretData('-', Readable.from([])), { message: 'error reading from STDIN: data is empty' })
  await t.rejects(readSecretData('/nonexistent/file', Readable.from([])), /^error reading from \/nonexistent\/file: /)
})

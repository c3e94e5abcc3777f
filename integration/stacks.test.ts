/**
 * Stacks and configs against one swarmd node (process tasks), driven by the
 * real docker CLI and by swarmctl on the same compose file: two services,
 * an overlay network, a secret and a config; deploy, a redeploy that changes
 * the services in place, `stack ls / services / ps`, the config delivered
 * to the tasks, the refusals Docker makes (a config in use, a changed
 * config's data), `stack rm`, and nothing left afterwards. Its own loopback
 * address, 127.0.0.137, for gossip and the control plane.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { killTasks, startDaemon, swarmctl, taskProcesses } from './helpers/daemon.js'
import { DOCKER, dockerCliMissing, testNeeding } from './helpers/prerequisites.js'
import { run, waitUntil, type ManagedProcess, type RunResult } from './helpers/procs.js'

const IP = '127.0.0.137'

const COMPOSE = (version: string, replicas: number) => `services:
  web:
    image: alpine
    command: ["sh", "-c", "cat \\"$$SWARMD_CONFIGS_DIR/etc/app.conf\\"; echo; cat \\"$$SWARMD_SECRETS_DIR/db_pw\\"; echo; echo \\"v=$$VERSION\\"; exec sleep 600"]
    environment:
      VERSION: "${version}"
    networks: [front]
    secrets: [db_pw]
    configs:
      - source: app
        target: /etc/app.conf
    deploy:
      replicas: ${replicas}
  worker:
    image: alpine
    command: sleep 600
networks:
  front:
    driver: overlay
secrets:
  db_pw:
    file: ./pw.txt
configs:
  app:
    file: ./app.conf
`

interface Cli {
  /** The command's result; `ok` fails the test unless it exits 0. */
  (...args: string[]): Promise<RunResult>
  ok(...args: string[]): Promise<string>
}

const lines = (s: string): string[] => s.trim().split('\n').filter(Boolean)

t.test('stacks and configs, by the docker CLI and by swarmctl', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-stacks-'))
  const sock = join(dir, 's.sock')
  let daemon: ManagedProcess | undefined
  let nodeId = ''
  t.teardown(async () => {
    await daemon?.stop()
    if (nodeId) killTasks([nodeId])
    rmSync(dir, { recursive: true, force: true })
  })
  daemon = await startDaemon({ dataDir: join(dir, 'data'), sock, hostname: 'stack-node' })
  const cli = (run1: (args: string[]) => Promise<RunResult>): Cli => {
    const c = ((...args: string[]) => run1(args)) as Cli
    c.ok = async (...args) => {
      const r = await run1(args)
      if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`)
      return r.stdout
    }
    return c
  }
  const ctl = cli(args => swarmctl(sock, ...args))
  await ctl.ok('swarm', 'init', '--advertise-addr', IP, '--listen-addr', `${IP}:2377`)
  nodeId = JSON.parse(await ctl.ok('node', 'inspect', 'self'))[0].ID

  const project = join(dir, 'project')
  const write = (version: string, replicas: number, conf = 'listen 80'): void => {
    writeFileSync(join(project, 'stack.yml'), COMPOSE(version, replicas))
    writeFileSync(join(project, 'app.conf'), conf)
  }
  mkdirSync(project)
  writeFileSync(join(project, 'pw.txt'), 'hunter2')

  /** What the web tasks print: the config, the secret, their version. */
  const webOutput = (c: Cli): Promise<string> => c.ok('service', 'logs', '--raw', 'st_web')
  const converged = async (c: Cli, want: RegExp[], what: string): Promise<void> => {
    let last = ''
    try {
      await waitUntil(async () => {
        last = await c.ok('stack', 'services', 'st')
        return want.every(w => w.test(last))
      }, { timeoutMs: 60_000, what })
    } catch (e) {
      throw new Error(`${(e as Error).message}; stack services showed:\n${last}`)
    }
  }
  const nothingLeft = async (t: Test, c: Cli): Promise<void> => {
    t.equal(await c.ok('stack', 'ls'), 'NAME      SERVICES\n', 'no stack')
    t.equal(lines(await c.ok('service', 'ls', '-q')).length, 0, 'no service')
    t.same(lines(await c.ok('network', 'ls', '--format', '{{.Name}}')), ['ingress'], 'no network but ingress')
    t.equal(lines(await c.ok('secret', 'ls', '-q')).length, 0, 'no secret')
    t.equal(lines(await c.ok('config', 'ls', '-q')).length, 0, 'no config')
    await waitUntil(() => taskProcesses([nodeId]).length === 0, { timeoutMs: 30_000, what: 'the task processes gone' })
    t.pass('no task process')
  }

  /** Deploy, inspect, redeploy, refusals, remove: what both CLIs must do alike. */
  const lifecycle = async (t: Test, c: Cli, name: string): Promise<void> => {
    write('1', 2)
    let r = await c('stack', 'deploy', '-c', join(project, 'stack.yml'), 'st')
    t.equal(r.code, 0, `${name} stack deploy: ${r.stderr}`)
    t.same(lines(r.stdout).sort(), ['Creating config st_app', 'Creating network st_default', 'Creating network st_front', 'Creating secret st_db_pw', 'Creating service st_web', 'Creating service st_worker'])
    t.match(r.stderr, 'Since --detach=false was not specified, tasks will be created in the background.')
    await converged(c, [/st_web\s+replicated\s+2\/2\s+alpine:latest/, /st_worker\s+replicated\s+1\/1\s+alpine:latest/], 'the stack running')
    const serviceIds = async (): Promise<Map<string, string>> => new Map((JSON.parse(await c.ok('service', 'inspect', 'st_web', 'st_worker')) as { ID: string; Spec: { Name: string } }[]).map(s => [s.Spec.Name, s.ID]))
    const ids = await serviceIds()

    t.equal(await c.ok('stack', 'ls'), 'NAME      SERVICES\nst        2\n')
    const ps = lines(await c.ok('stack', 'ps', 'st', '--format', '{{.Name}} {{.Image}} {{.Node}} {{.DesiredState}}'))
    t.same(ps.sort(), ['st_web.1 alpine:latest stack-node Running', 'st_web.2 alpine:latest stack-node Running', 'st_worker.1 alpine:latest stack-node Running'])
    t.match((await c('stack', 'ps', 'nope')).stderr, 'nothing found in stack: nope')
    t.match((await c('stack', 'services', 'nope')).stderr, 'Nothing found in stack: nope')

    // Labelled with the namespace, as the docker CLI finds them again.
    t.same(JSON.parse(await c.ok('config', 'inspect', 'st_app'))[0].Spec.Labels, { 'com.docker.stack.namespace': 'st' })
    t.same(JSON.parse(await c.ok('secret', 'inspect', 'st_db_pw'))[0].Spec.Labels, { 'com.docker.stack.namespace': 'st' })
    t.same(JSON.parse(await c.ok('network', 'inspect', 'st_front'))[0].Labels, { 'com.docker.stack.namespace': 'st' })
    const svc = JSON.parse(await c.ok('service', 'inspect', 'st_web'))[0]
    t.equal(svc.Spec.Labels['com.docker.stack.namespace'], 'st')
    t.match(svc.Spec.TaskTemplate.ContainerSpec.Configs, [{ ConfigName: 'st_app', File: { Name: '/etc/app.conf', Mode: 0o444 } }])
    t.match(svc.Spec.TaskTemplate.Networks, [{ Aliases: ['web'] }])

    // The config reaches each task as a file of mode 0444 in $SWARMD_CONFIGS_DIR, the secret in $SWARMD_SECRETS_DIR.
    await waitUntil(async () => (await webOutput(c)).split('listen 80\nhunter2\nv=1').length === 3, { timeoutMs: 30_000, what: 'both web tasks printing the config and the secret' })
    const web = taskProcesses([nodeId], 'st_web')
    t.equal(web.length >= 2, true, 'two web task processes')
    const confDir = readFileSync(`/proc/${web[0]!.pid}/environ`, 'latin1').split('\0').find(v => v.startsWith('SWARMD_CONFIGS_DIR='))!.slice('SWARMD_CONFIGS_DIR='.length)
    t.equal(statSync(join(confDir, 'etc/app.conf')).mode & 0o777, 0o444, 'mode 0444 at the target')

    // Docker's refusals: a config in use, a changed config's data on a redeploy.
    r = await c('config', 'rm', 'st_app')
    t.not(r.code, 0)
    t.match(r.stderr, "Error response from daemon: rpc error: code = InvalidArgument desc = config 'st_app' is in use by the following service: st_web")
    write('1', 2, 'listen 81')
    r = await c('stack', 'deploy', '-c', join(project, 'stack.yml'), 'st')
    t.not(r.code, 0, 'a config is immutable')
    t.match(r.stderr, 'failed to update config st_app: Error response from daemon: rpc error: code = InvalidArgument desc = only updates to Labels are allowed')

    // A redeploy with a change converges in place: the same services, updated.
    write('2', 3)
    r = await c('stack', 'deploy', '-c', join(project, 'stack.yml'), 'st')
    t.equal(r.code, 0, `${name} redeploy: ${r.stderr}`)
    t.same(lines(r.stdout).sort(), [`Updating service st_web (id: ${ids.get('st_web')})`, `Updating service st_worker (id: ${ids.get('st_worker')})`], 'nothing created again')
    await converged(c, [/st_web\s+replicated\s+3\/3/, /st_worker\s+replicated\s+1\/1/], 'the redeployed stack running')
    t.same(await serviceIds(), ids, 'the same service IDs')
    await waitUntil(async () => (await webOutput(c)).split('v=2').length === 4, { timeoutMs: 60_000, what: 'three web tasks at version 2' })
    t.pass('three tasks at the new version')

    r = await c('stack', 'rm', 'st')
    t.equal(r.code, 0, `${name} stack rm: ${r.stderr}`)
    const removed = lines(r.stdout)
    t.same(removed.slice(0, 4), ['Removing service st_web', 'Removing service st_worker', 'Removing secret st_db_pw', 'Removing config st_app'], 'services first, then secrets and configs')
    t.same(removed.slice(4).sort(), ['Removing network st_default', 'Removing network st_front'], 'networks last')
    await nothingLeft(t, c)
    t.match((await c('stack', 'rm', 'st')).stderr, 'Nothing found in stack: st')
  }

  await testNeeding(t, 'the docker CLI', dockerCliMissing, async t => {
    const docker = cli(args => run(DOCKER!, ['-H', `unix://${sock}`, ...args], { env: { ...process.env, DOCKER_CONFIG: join(dir, 'docker-config') }, timeoutMs: 60_000 }))
    await lifecycle(t, docker, 'docker')

    // config create / ls / inspect / rm, and service create / update --config, with the docker CLI.
    writeFileSync(join(dir, 'c.txt'), 'one\n')
    const id = (await docker.ok('config', 'create', '--label', 'k=v', 'c1', join(dir, 'c.txt'))).trim()
    t.match(id, /^[0-9a-z]{25}$/)
    t.match(await docker.ok('config', 'ls'), new RegExp(`^ID\\s+NAME\\s+CREATED\\s+UPDATED\\n${id}\\s+c1\\s+`))
    t.equal((await docker.ok('config', 'inspect', '--format', '{{printf "%s" .Spec.Data}}', 'c1')), 'one\n\n', 'a config shows its data')
    t.equal(await docker.ok('config', 'inspect', '--pretty', 'c1'), await ctl.ok('config', 'inspect', '--pretty', 'c1'), 'inspect --pretty as docker prints it')
    t.equal(await docker.ok('config', 'ls', '--format', '{{.ID}} {{.Name}}'), await ctl.ok('config', 'ls', '--format', '{{.ID}} {{.Name}}'), 'ls as docker prints it')
    await docker.ok('service', 'create', '-d', '--name', 'plain', '--config', 'source=c1,target=/c1', 'alpine', 'sleep', '600')
    writeFileSync(join(dir, 'c.txt'), 'two\n')
    await docker.ok('config', 'create', 'c2', join(dir, 'c.txt'))
    await docker.ok('service', 'update', '-d', '--config-rm', 'c1', '--config-add', 'source=c2,target=/etc/c2,mode=0400', 'plain')
    const refs = JSON.parse(await docker.ok('service', 'inspect', 'plain'))[0].Spec.TaskTemplate.ContainerSpec.Configs
    t.match(refs, [{ ConfigName: 'c2', File: { Name: '/etc/c2', Mode: 0o400 } }])
    t.equal(refs.length, 1)
    t.equal(await docker.ok('config', 'rm', 'c1'), 'c1\n', 'no longer used: removed')
    await docker.ok('service', 'rm', 'plain')
    t.equal(await docker.ok('config', 'rm', 'c2'), 'c2\n')
    await nothingLeft(t, docker)
  })

  await t.test('swarmctl', async t => {
    await lifecycle(t, ctl, 'swarmctl')
    // A compose file is checked before anything is created: the error names the file, line and path.
    writeFileSync(join(project, 'bad.yml'), 'services:\n  web:\n    image: alpine\n    deploy:\n      replicas: [2]\n')
    const r = await ctl('stack', 'deploy', '-c', join(project, 'bad.yml'), 'st')
    t.equal(r.code, 1)
    t.equal(r.stderr, `${join(project, 'bad.yml')}:5:7: services.web.deploy.replicas must be a integer or string\n`)
    await nothingLeft(t, ctl)
  })
})

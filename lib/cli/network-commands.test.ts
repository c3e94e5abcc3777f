import t, { type Test } from 'tap'
import { Command, CommanderError } from 'commander'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiClient } from '../api/client.js'
import { ApiServer } from '../api/http.js'
import { mountNetworkRoutes } from '../api/network-routes.js'
import { SwarmdError } from '../types/errors.js'
import { ApiError } from '../api/api-error.js'
import { Networks } from '../manager/networks.js'
import type { NetworkObject } from '../types/network.js'
import { Store } from '../manager/store.js'
import type { Service } from '../types/service.js'
import { addNetworkCommands, createRequest, formatNetworks, inspectTemplate, ipamConfig, naturalLess } from './network-commands.js'

/** A real store and Networks behind the real API server on a temp unix socket. */
async function daemon(t: Test): Promise<{ sock: string; store: Store; networks: Networks }> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmd-netcli-'))
  const store = await Store.open(join(dir, 'state'))
  const networks = new Networks(store)
  const api = new ApiServer()
  mountNetworkRoutes(api, () => networks)
  const sock = join(dir, 'api.sock')
  await api.listen(sock)
  t.teardown(async () => {
    await api.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { sock, store, networks }
}

/** Runs `network …` as swarmctl would: output captured, errors printed as its main prints them. */
async function run(sock: string, args: string[], answer = 'n'): Promise<{ code: number; stdout: string; stderr: string; asked: string[] }> {
  let stdout = ''
  let stderr = ''
  const asked: string[] = []
  const ow = process.stdout.write.bind(process.stdout)
  const ew = process.stderr.write.bind(process.stderr)
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += s.toString()), true)) as typeof process.stdout.write
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += s.toString()), true)) as typeof process.stderr.write
  try {
    const program = new Command('swarmctl').exitOverride()
    addNetworkCommands(program, () => new ApiClient(sock), async m => (asked.push(m), answer === 'y'))
    await program.parseAsync(args, { from: 'user' })
    return { code: 0, stdout, stderr, asked }
  } catch (e) {
    if (e instanceof CommanderError) return { code: 2, stdout, stderr, asked }
    if (e instanceof ApiError) stderr += `Error response from daemon: ${e.message}\n`
    else if (e instanceof SwarmdError) stderr += `${e.message}\n`
    else throw e
    return { code: 1, stdout, stderr, asked }
  } finally {
    process.stdout.write = ow
    process.stderr.write = ew
  }
}

/** A raw request, to see status codes and bodies as the docker CLI does. */
function raw(sock: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path: `/v1.41${path}`, headers: { 'Content-Type': 'application/json' } }, res => {
      let data = ''
      res.on('data', d => (data += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) : undefined }))
    })
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

t.test('create maps docker flags to the request docker sends', async t => {
  t.same(createRequest('web', { driver: 'overlay', ipamDriver: 'default', opt: ['encrypted', 'com.docker.network.driver.mtu=1400'], label: ['a=1', 'b'], attachable: true, subnet: ['10.5.0.0/24'], gateway: ['10.5.0.254'] }), {
    Name: 'web',
    Driver: 'overlay',
    Scope: '',
    IPAM: { Driver: 'default', Config: [{ Subnet: '10.5.0.0/24', Gateway: '10.5.0.254', AuxiliaryAddresses: {} }], Options: {} },
    Internal: false,
    Attachable: true,
    Ingress: false,
    ConfigOnly: false,
    Options: { encrypted: '', 'com.docker.network.driver.mtu': '1400' },
    Labels: { a: '1', b: '' },
  })
  const err = (f: () => unknown): string => {
    try {
      f()
      return ''
    } catch (e) {
      return (e as Error).message
    }
  }
  t.equal(err(() => ipamConfig({ ipamDriver: 'default', gateway: ['10.0.0.1'] })), 'every ip-range or gateway must have a corresponding subnet')
  t.equal(err(() => ipamConfig({ ipamDriver: 'default', subnet: ['10.0.0.0/16', '10.0.1.0/24'] })), 'multiple overlapping subnet configuration is not supported')
  t.equal(err(() => ipamConfig({ ipamDriver: 'default', subnet: ['10.0.0.0/24'], gateway: ['10.1.0.1'] })), 'no matching subnet for gateway 10.1.0.1')
  t.equal(err(() => ipamConfig({ ipamDriver: 'default', subnet: ['10.0.0.0/24', '10.1.0.0/24'], ipRange: ['10.0.0.0/28', '10.0.0.16/28'] })), 'cannot configure multiple ranges (10.0.0.16/28, 10.0.0.0/28) on the same subnet (10.0.0.0/24)')
  t.equal(err(() => ipamConfig({ ipamDriver: 'default', subnet: ['nope'] })), '')
  t.equal(err(() => ipamConfig({ ipamDriver: 'default', subnet: ['nope', '10.0.0.0/24'] })), 'invalid subnet: invalid CIDR address: nope')
  t.same(ipamConfig({ ipamDriver: 'default', subnet: ['10.0.0.0/24'], ipRange: ['10.0.0.128/25'], auxAddress: ['host1=10.0.0.5'], ipamOpt: ['k=v'] }), {
    Driver: 'default',
    Config: [{ Subnet: '10.0.0.0/24', IPRange: '10.0.0.128/25', AuxiliaryAddresses: { host1: '10.0.0.5' } }],
    Options: { k: 'v' },
  })
})

t.test('ls formatting: docker table, natural name order, truncation, -q, --format', async t => {
  const net = (Id: string, Name: string): NetworkObject =>
    ({ Id, Name, Driver: 'overlay', Scope: 'swarm', EnableIPv4: true, EnableIPv6: false, Internal: false, Labels: { a: '1' }, Created: '2024-01-01T00:00:00Z' }) as unknown as NetworkObject
  const list = [net('bbbbbbbbbbbbbbbbbbbbbbbbb', 'net10'), net('aaaaaaaaaaaaaaaaaaaaaaaaa', 'net9'), net('ccccccccccccccccccccccccc', 'ingress')]
  t.equal(
    formatNetworks(list, { trunc: true }),
    'NETWORK ID     NAME      DRIVER    SCOPE\n' + 'cccccccccccc   ingress   overlay   swarm\n' + 'aaaaaaaaaaaa   net9      overlay   swarm\n' + 'bbbbbbbbbbbb   net10     overlay   swarm\n',
  )
  t.equal(formatNetworks(list, { trunc: true, quiet: true }), 'cccccccccccc\naaaaaaaaaaaa\nbbbbbbbbbbbb\n')
  t.equal(formatNetworks(list, { trunc: false, quiet: true }).split('\n')[0], 'ccccccccccccccccccccccccc')
  t.equal(formatNetworks(list, { trunc: true, format: '{{.Name}}:{{.Labels}}' }), 'ingress:a=1\nnet9:a=1\nnet10:a=1\n')
  t.equal(formatNetworks(list, { trunc: true, format: 'table {{.Name}}\t{{.IPv4}}' }), 'NAME      IPV4\ningress   true\nnet9      true\nnet10     true\n')
  t.ok(naturalLess('a2', 'a10'))
  t.notOk(naturalLess('a10', 'a2'))
  t.ok(naturalLess('a', 'a1'))
  t.ok(naturalLess('a01', 'a1') !== naturalLess('a1', 'a01'))
  t.equal(inspectTemplate('{{.Name}} {{json .IPAM.Config}} {{.Nope}}', { Name: 'x', IPAM: { Config: [{ Subnet: '10.0.0.0/24' }] } }), 'x [{"Subnet":"10.0.0.0/24"}] <no value>')
})

t.test('end to end: create, ls, inspect, rm against the routes over a real store', async t => {
  const { sock, store, networks } = await daemon(t)
  await networks.ensureIngress()
  const c = await run(sock, ['network', 'create', '-d', 'overlay', '--opt', 'encrypted', '--attachable', '--label', 'team=a', 'backend'])
  t.equal(c.code, 0, c.stderr)
  const id = c.stdout.trim()
  t.match(id, /^[0-9a-z]{25}$/)
  t.equal(networks.get('backend').ID, id)
  await run(sock, ['network', 'create', '--subnet', '10.9.0.0/16', '--gateway', '10.9.0.254', 'front'])

  const dup = await run(sock, ['network', 'create', 'backend'])
  t.same([dup.code, dup.stderr], [1, 'Error response from daemon: network with name backend already exists\n'])
  const overlap = await run(sock, ['network', 'create', '--subnet', '10.9.1.0/24', 'x'])
  t.equal(overlap.stderr, 'Error response from daemon: invalid pool request: Pool overlaps with other one on this address space\n')
  const bad = await run(sock, ['network', 'create', '--subnet', '10.9.1.0/24', '--gateway', '10.8.0.1', 'x'])
  t.same([bad.code, bad.stderr], [1, 'no matching subnet for gateway 10.8.0.1\n'])

  const ls = await run(sock, ['network', 'ls'])
  const lines = ls.stdout.trimEnd().split('\n')
  t.match(lines[0], /^NETWORK ID +NAME +DRIVER +SCOPE$/)
  t.same(
    lines.slice(1).map(l => l.split(/ +/).slice(1)),
    [
      ['backend', 'overlay', 'swarm'],
      ['front', 'overlay', 'swarm'],
      ['ingress', 'overlay', 'swarm'],
    ],
  )
  t.equal(lines[1]!.split(' ')[0], id.slice(0, 12))
  t.equal((await run(sock, ['network', 'ls', '-q', '--no-trunc', '-f', 'name=back'])).stdout, `${id}\n`)
  t.equal((await run(sock, ['network', 'ls', '-q', '-f', 'label=team=a'])).stdout, `${id.slice(0, 12)}\n`)
  t.equal((await run(sock, ['network', 'ls', '-q', '-f', 'driver=bridge'])).stdout, '')
  t.equal((await run(sock, ['network', 'ls', '-f', 'bogus=1'])).stderr, "Error response from daemon: Invalid filter 'bogus'\n")

  const insp = await run(sock, ['network', 'inspect', 'backend', id.slice(0, 10)])
  t.match(insp.stdout, /^\[\n {4}\{\n {8}"Name": "backend",\n {8}"Id": "/)
  const objs = JSON.parse(insp.stdout) as NetworkObject[]
  t.equal(objs.length, 2)
  t.match(objs[0], { Name: 'backend', Id: id, Scope: 'swarm', Driver: 'overlay', Attachable: true, Ingress: false, Labels: { team: 'a' }, IPAM: { Driver: 'default', Config: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] } })
  t.same(Object.keys(objs[0]!), ['Name', 'Id', 'Created', 'Scope', 'Driver', 'EnableIPv4', 'EnableIPv6', 'IPAM', 'Internal', 'Attachable', 'Ingress', 'ConfigFrom', 'ConfigOnly', 'Containers', 'Options', 'Labels'])
  t.same(objs[0]!.Options, { encrypted: '', 'com.docker.network.driver.overlay.vxlanid_list': '4097', 'com.swarmd.network.loopback_subnet': '127.1.1.0/24' })
  t.equal((await run(sock, ['network', 'inspect', '-f', '{{.IPAM.Config}}', 'front'])).stdout, '[{"Subnet":"10.9.0.0/16","Gateway":"10.9.0.254"}]\n')
  const missing = await run(sock, ['network', 'inspect', 'nope', 'front'])
  t.equal(missing.code, 1)
  t.equal(JSON.parse(missing.stdout).length, 1)
  t.equal(missing.stderr, 'Error response from daemon: network nope not found\n')
  t.same(await run(sock, ['network', 'inspect', 'nope']), { code: 1, stdout: '[]\n', stderr: 'Error response from daemon: network nope not found\n', asked: [] })

  // In use by a service: docker prints the error, removes the rest, fails.
  const svc: Service = {
    ID: 'svcid1',
    Version: { Index: 1 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: { Name: 'api', TaskTemplate: { ContainerSpec: { Image: 'x' }, Networks: [{ Target: id }] }, Mode: {}, EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }] } },
    Endpoint: { Spec: {} },
  }
  await store.commit([{ op: 'put', table: 'services', id: svc.ID, value: svc }])
  t.equal((await run(sock, ['network', 'ls', '-q', '--no-trunc', '-f', 'dangling=true'])).stdout, `${networks.get('front').ID}\n`)
  const rm = await run(sock, ['network', 'rm', 'backend', 'front', 'nope'])
  t.equal(rm.code, 1)
  t.equal(rm.stdout, 'front\n')
  t.equal(rm.stderr, `Error response from daemon: rpc error: code = FailedPrecondition desc = network ${id} is in use by service svcid1\nError response from daemon: network nope not found\nexit status 1\n`)
  t.same(await run(sock, ['network', 'rm', '-f', 'nope']), { code: 0, stdout: '', stderr: '', asked: [] })

  // The ingress network: docker asks first; refused while a service publishes.
  const no = await run(sock, ['network', 'rm', 'ingress'])
  t.same([no.code, no.stdout], [0, ''])
  t.match(no.asked[0], /^WARNING! Before removing the routing-mesh network/)
  const busy = await run(sock, ['network', 'rm', 'ingress'], 'y')
  t.equal(busy.stderr, 'Error response from daemon: rpc error: code = FailedPrecondition desc = ingress network cannot be removed because service svcid1 depends on it\nexit status 1\n')
  await store.commit([{ op: 'delete', table: 'services', id: svc.ID }])
  t.same((await run(sock, ['network', 'rm', 'ingress', 'backend'], 'y')).stdout, 'ingress\nbackend\n')
  t.same(
    networks.list().map(n => n.Name),
    [],
  )
})

t.test('routes: status codes, bodies, lookups and prune as the Engine API', async t => {
  const { sock, networks } = await daemon(t)
  const created = await raw(sock, 'POST', '/networks/create', { Name: 'a', Driver: 'overlay', IPAM: { Driver: 'default', Config: [], Options: {} }, Options: {}, Labels: { keep: '1' } })
  t.equal(created.status < 300, true)
  t.same(Object.keys(created.body as object), ['Id', 'Warning'])
  const id = (created.body as { Id: string }).Id
  await raw(sock, 'POST', '/networks/create', { Name: 'b', Driver: 'overlay' })
  t.same(await raw(sock, 'POST', '/networks/create', { Name: 'a', Driver: 'overlay' }), { status: 409, body: { message: 'network with name a already exists' } })
  t.same(await raw(sock, 'POST', '/networks/create', { Name: 'c', Driver: 'overlay', Ingress: true, Attachable: true }), {
    status: 400,
    body: { message: 'rpc error: code = InvalidArgument desc = ingress network cannot be attachable' },
  })
  t.equal((await raw(sock, 'GET', `/networks/${id}`)).status, 200)
  t.equal(((await raw(sock, 'GET', `/networks/a?scope=swarm&verbose=true`)).body as NetworkObject).Id, id)
  t.same(await raw(sock, 'GET', `/networks/a?scope=local`), { status: 404, body: { message: 'network a not found' } })
  t.same(await raw(sock, 'GET', `/networks/a?verbose=maybe`), { status: 400, body: { message: 'invalid value for verbose: maybe: strconv.ParseBool: parsing "maybe": invalid syntax' } })
  const list = (f: unknown): Promise<{ status: number; body: unknown }> => raw(sock, 'GET', `/networks?filters=${encodeURIComponent(JSON.stringify(f))}`)
  t.same(((await list({ name: { '^a$': true } })).body as NetworkObject[]).map(n => n.Name), ['a'])
  t.same(((await list({ id: [id] })).body as NetworkObject[]).map(n => n.Name), ['a'])
  t.same(((await list({ scope: { swarm: true }, type: { custom: true } })).body as NetworkObject[]).map(n => n.Name), ['a', 'b'])
  t.same((await list({ type: { builtin: true } })).body, [])
  t.same(await list({ type: { odd: true } }), { status: 500, body: { message: "invalid filter: 'type'='odd'" } })
  t.same(await list({ dangling: { maybe: true } }), { status: 400, body: { message: `invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")` } })
  t.same(((await list({ dangling: { false: true } })).body as NetworkObject[]).length, 0)
  t.same(await raw(sock, 'POST', `/networks/prune?filters=${encodeURIComponent(JSON.stringify({ bad: ['x'] }))}`), { status: 400, body: { message: "Invalid filter 'bad'" } })
  // prune: label! keeps `a`; the ingress network is never pruned.
  await networks.ensureIngress()
  t.same(await raw(sock, 'POST', `/networks/prune?filters=${encodeURIComponent(JSON.stringify({ 'label!': ['keep'], until: ['1h'] }))}`), { status: 200, body: { NetworksDeleted: null } })
  t.same(await raw(sock, 'POST', `/networks/prune?filters=${encodeURIComponent(JSON.stringify({ 'label!': ['keep'] }))}`), { status: 200, body: { NetworksDeleted: ['b'] } })
  t.same(
    networks.list().map(n => n.Name),
    ['a', 'ingress'],
  )
  const del = await raw(sock, 'DELETE', `/networks/${id.slice(0, 8)}`)
  t.equal(del.status < 300, true)
  t.same(await raw(sock, 'DELETE', `/networks/${id}`), { status: 404, body: { message: `network ${id} not found` } })
})

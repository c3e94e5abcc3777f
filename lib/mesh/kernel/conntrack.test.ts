import { pino } from 'pino'
import t from 'tap'
import { conntrackFlushes, runFlushes } from './conntrack.js'
import type { Backend, Ruleset } from './ruleset.js'
import type { Runner } from './runner.js'

const rules = (o: { vip?: Backend[]; udp?: Backend[]; tcp?: Backend[]; host?: Required<Backend>[] }): Ruleset => ({
  vxlanPort: 4789,
  vteps: [],
  vips: o.vip ? [{ addr: '10.0.0.2', service: { id: 'dns', comment: 'dns', backends: o.vip } }] : [],
  published: [
    ...(o.udp ? [{ protocol: 'udp' as const, port: 5353, service: { id: 'dns-udp', comment: 'dns 53/udp', backends: o.udp } }] : []),
    ...(o.tcp ? [{ protocol: 'tcp' as const, port: 8080, service: { id: 'web', comment: 'web 80/tcp', backends: o.tcp } }] : []),
  ],
  hostPorts: (o.host ?? []).map(backend => ({ protocol: 'udp' as const, port: 9000, backend })),
  snat: [],
  overlays: [],
})
const none = new Set<string>()

t.test('a task stops: its UDP paths lose their entries, nothing else does', async t => {
  const before = rules({ vip: [{ addr: '10.0.0.3' }, { addr: '10.0.0.4' }], udp: [{ addr: '10.0.0.3', port: 53 }, { addr: '10.0.0.4', port: 53 }], tcp: [{ addr: '10.0.0.4', port: 80 }] })
  const after = rules({ vip: [{ addr: '10.0.0.3' }], udp: [{ addr: '10.0.0.3', port: 53 }], tcp: [] })
  t.same(conntrackFlushes(before, after, none), [
    ['-D', '-p', 'udp', '--orig-dst', '10.0.0.2', '--reply-src', '10.0.0.4'],
    ['-D', '-p', 'udp', '--orig-port-dst', '5353', '--reply-src', '10.0.0.4', '--reply-port-src', '53'],
  ], 'the VIP to it and the published UDP port to it; its TCP connections drain')
  t.same(conntrackFlushes(after, after, none), [], 'no change, nothing to delete')
})

t.test('a node dies: every flow to its tasks goes, TCP too, once per address', async t => {
  const before = rules({ vip: [{ addr: '10.0.0.3' }, { addr: '10.0.0.4' }], udp: [{ addr: '10.0.0.4', port: 53 }, { addr: '10.0.0.3', port: 53 }] })
  const after = rules({ vip: [{ addr: '10.0.0.3' }], udp: [{ addr: '10.0.0.3', port: 53 }] })
  t.same(conntrackFlushes(before, after, new Set(['10.0.0.4'])), [['-D', '--reply-src', '10.0.0.4']])
})

t.test('a VIP or UDP port that gains its first backend loses the untranslated entries made without one', async t => {
  const after = rules({ vip: [{ addr: '10.0.0.3' }], udp: [{ addr: '10.0.0.3', port: 53 }], tcp: [{ addr: '10.0.0.3', port: 80 }], host: [{ addr: '10.0.0.3', port: 9001 }] })
  t.same(conntrackFlushes(rules({ vip: [], udp: [] }), after, none), [
    ['-D', '-p', 'udp', '--orig-dst', '10.0.0.2', '--reply-src', '10.0.0.2'],
    ['-D', '-p', 'udp', '--orig-port-dst', '5353', '--reply-port-src', '5353'],
    ['-D', '-p', 'udp', '--orig-port-dst', '9000', '--reply-port-src', '9000'],
  ], 'the VIP, the published UDP port and the host-mode UDP port; not the TCP port')
})

t.test('a host-mode UDP port whose task is replaced', async t => {
  const before = rules({ host: [{ addr: '10.0.0.3', port: 9001 }] })
  const after = rules({ host: [{ addr: '10.0.0.5', port: 9001 }] })
  t.same(conntrackFlushes(before, after, none), [['-D', '-p', 'udp', '--orig-port-dst', '9000', '--reply-src', '10.0.0.3', '--reply-port-src', '9001']])
})

t.test('runFlushes: none matched is no failure; a failure is logged and the rest still run', async t => {
  const warned: unknown[] = []
  const log = pino({ level: 'warn' }, { write: (s: string) => void warned.push(JSON.parse(s)) })
  const calls: string[] = []
  const run: Runner = async (p, args) => {
    calls.push(`${p} ${args.join(' ')}`)
    if (args.includes('10.0.0.4')) return { code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n' }
    if (args.includes('10.0.0.5')) return { code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): Operation not permitted\n' }
    return { code: 0, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n' }
  }
  await runFlushes(run, [['-D', '--reply-src', '10.0.0.4'], ['-D', '--reply-src', '10.0.0.5'], ['-D', '--reply-src', '10.0.0.6']], log)
  t.same(calls, ['conntrack -D --reply-src 10.0.0.4', 'conntrack -D --reply-src 10.0.0.5', 'conntrack -D --reply-src 10.0.0.6'])
  t.match(warned, [{ args: ['-D', '--reply-src', '10.0.0.5'], stderr: /Operation not permitted/ }])
  t.equal(warned.length, 1)
})

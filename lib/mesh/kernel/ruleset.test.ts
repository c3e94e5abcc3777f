import t from 'tap'
import { deleteRuleset, renderRuleset, type Balanced, type Ruleset } from './ruleset.js'
import { spawnRunner } from './runner.js'

const webVip: Balanced = { id: '4096-web1', comment: 'web on ingress', backends: [{ addr: '10.0.0.254' }, { addr: '10.0.0.250' }] }
const apiVip: Balanced = { id: '4097-api1', comment: 'api on backend', backends: [{ addr: '10.0.1.254' }] }
const idleVip: Balanced = { id: '4097-idle', comment: 'idle on backend', backends: [] }
const webPub: Balanced = {
  id: 'web1-tcp-80',
  comment: 'web 80/tcp',
  backends: [
    { addr: '10.0.0.254', port: 80 },
    { addr: '10.0.0.250', port: 80 },
  ],
}
const dnsPub: Balanced = { id: 'dns1-udp-53', comment: 'dns 53/udp', backends: [{ addr: '10.0.0.249', port: 53 }] }

const RULES: Ruleset = {
  vxlanPort: 4789,
  vteps: ['192.0.2.2', '192.0.2.3'],
  vips: [
    { addr: '10.0.0.2', service: webVip },
    { addr: '10.0.1.2', service: apiVip },
    { addr: '10.0.1.4', service: idleVip },
  ],
  published: [
    { protocol: 'tcp', port: 8080, service: webPub },
    { protocol: 'udp', port: 5353, service: dnsPub },
    { protocol: 'tcp', port: 8081, service: { id: 'idle-tcp-81', comment: 'idle 81/tcp', backends: [] } },
  ],
  hostPorts: [{ protocol: 'tcp', port: 9000, backend: { addr: '10.0.1.254', port: 8000 } }],
  snat: [
    { bridge: 'swbr4096', addr: '10.0.0.253' },
    { bridge: 'swbr4097', addr: '10.0.1.252' },
  ],
  overlays: ['10.0.0.0/24', '10.0.1.0/24'],
}

t.test('the ruleset: maps to a chain per service, numgen over its backends, a chain per backend', async t => {
  const text = renderRuleset(RULES)
  t.match(text, /^table ip swarmd \{\}\ndelete table ip swarmd\ntable ip swarmd \{\n/, 'one file that replaces the whole table')
  t.match(text, /map vips \{ type ipv4_addr : verdict; elements = \{ 10\.0\.0\.2 : goto vip-4096-web1, 10\.0\.1\.2 : goto vip-4097-api1 \} \}/)
  t.match(text, /meta l4proto \{ tcp, udp \} ip daddr vmap @vips/, 'a VIP takes every TCP and UDP port, as Docker\'s')
  t.match(text, /chain vip-4096-web1 \{\n\s+jump mark-for-masq comment "web on ingress"\n\s+numgen random mod 2 vmap \{ 0 : goto ep-10\.0\.0\.254, 1 : goto ep-10\.0\.0\.250 \}/)
  t.match(text, /chain ep-10\.0\.0\.254 \{ dnat to 10\.0\.0\.254; \}/, 'to the same port of the task')
  t.match(text, /chain vip-4097-api1 \{\n\s+jump mark-for-masq comment "api on backend"\n\s+goto ep-10\.0\.1\.254\n/, 'one backend: no numgen')
  t.match(text, /map novips \{ type ipv4_addr : verdict; elements = \{ 10\.0\.1\.4 : goto reject-fast \} \}/, 'a VIP without tasks is refused at once')
  t.notMatch(text, /chain vip-4097-idle/)
  t.match(text, /map pubports \{ [^}]*elements = \{ tcp \. 8080 : goto pub-tcp-8080, udp \. 5353 : goto pub-udp-5353 \} \}/)
  t.match(text, /chain pub-tcp-8080 \{\n\s+jump mark-for-masq comment "web 80\/tcp"\n\s+numgen random mod 2 vmap \{ 0 : goto ep-tcp-10\.0\.0\.254-80, 1 : goto ep-tcp-10\.0\.0\.250-80 \}/)
  t.match(text, /chain ep-udp-10\.0\.0\.249-53 \{ meta l4proto udp dnat to 10\.0\.0\.249:53; \}/, 'a published port goes to the target port')
  t.match(text, /map nopubports \{ [^}]*elements = \{ tcp \. 8081 : goto reject-fast \} \}/)
  t.match(text, /map hostports \{ [^}]*elements = \{ tcp \. 9000 : goto ep-tcp-10\.0\.1\.254-8000 \} \}/, 'host mode: straight to the task, not marked')
  t.match(text, /oifname "swbr4096" snat ip to 10\.0\.0\.253\n\s+oifname "swbr4097" snat ip to 10\.0\.1\.252\n\s+masquerade\n/)
  t.notMatch(text, /fully-random/)
  t.match(text, /udp dport 4789 ip saddr != @vteps drop/)
  t.match(text, /set vteps \{ type ipv4_addr; elements = \{ 192\.0\.2\.2, 192\.0\.2\.3 \} \}/)
  t.match(text, /fib daddr type local ip daddr != 127\.0\.0\.0\/8 meta l4proto \. th dport vmap @pubports/, 'published on every address but loopback')
  t.match(renderRuleset({ ...RULES, ingressAddr: '192.0.2.1' }), /ip daddr 192\.0\.2\.1 meta l4proto \. th dport vmap @pubports/, '--ingress-addr: on that address only')
  t.match(text, /iifname "swbr4096" oifname != "swbr4096" drop/, 'networks are isolated')
})

t.test('an empty ruleset has the same shape, with empty sets and maps', async t => {
  const text = renderRuleset({ vxlanPort: 4789, vteps: [], vips: [], published: [], hostPorts: [], snat: [], overlays: [] })
  t.match(text, /set vteps \{ type ipv4_addr; \}/)
  t.match(text, /map vips \{ type ipv4_addr : verdict; \}/)
  t.notMatch(text, /chain (vip|pub|ep)-/)
})

const root = process.getuid?.() === 0
t.test('nft loads it, twice (the reload replaces), and the delete file removes it: in a throwaway namespace', { skip: root ? false : 'needs root' }, async t => {
  // Load from stdin, then list what the kernel holds, in one throwaway namespace.
  const inNs = (input: string, list: string) => spawnRunner('unshare', ['-n', 'sh', '-c', `nft -f - && nft list ${list}`], input)
  const text = renderRuleset(RULES)
  const loaded = await inNs(`${text}${text}`, 'table ip swarmd')
  t.equal(loaded.code, 0, `loads and reloads: ${loaded.stderr}`)
  t.match(loaded.stdout, /numgen random mod 2 vmap \{ 0 : goto ep-10\.0\.0\.254, 1 : goto ep-10\.0\.0\.250 \}/, 'the kernel holds the ruleset as written')
  const gone = await inNs(`${text}${deleteRuleset()}`, 'tables')
  t.equal(gone.code, 0, gone.stderr)
  t.notMatch(gone.stdout, /swarmd/, 'deleted')
})

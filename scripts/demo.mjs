#!/usr/bin/env node
/**
 * `npm run demo`: a three-host swarm on this machine and the seed walkthrough,
 * printed like a terminal session. As root each host is a network namespace
 * on a bridge (10.99.0.1-3); otherwise three daemons share the host's
 * loopback (127.0.0.1-3), published ports on each one's own address. The
 * cluster stays up until Ctrl-C (or, with --no-wait, goes right after the
 * walkthrough); either way daemons, task processes, namespaces, the bridge
 * and the temp dir are removed.
 *
 *   node scripts/demo.mjs [--no-wait] [--mode netns|loopback] [--addr-base IP] [--port N]
 *
 * --addr-base is the first host's address (the others follow it), so a demo
 * can run beside tests that use the defaults.
 */
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const SWARMD = fileURLToPath(new URL('../bin/swarmd.js', import.meta.url))
const SWARMCTL = fileURLToPath(new URL('../bin/swarmctl.js', import.meta.url))
const NODE = process.execPath

/** The helloworld task: an HTTP server on $PORT saying which host answered, logging each request. */
const TASK_JS =
  'require("http").createServer((q,s)=>{console.log("GET "+q.url);' +
  's.end("hello from "+process.env.SWARMD_NODE_HOSTNAME+" (helloworld."+process.env.SWARMD_TASK_SLOT+")\\n")})' +
  '.listen(process.env.PORT,()=>console.log("listening on "+process.env.PORT))'

function usage(msg) {
  process.stderr.write(`${msg}\nusage: node scripts/demo.mjs [--no-wait] [--mode netns|loopback] [--addr-base IP] [--port N]\n`)
  process.exit(2)
}

function which(name, extra = []) {
  for (const p of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map(d => join(d, name)), ...extra]) {
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // keep looking
    }
  }
  return undefined
}

let opts
try {
  opts = parseArgs({
    options: {
      'no-wait': { type: 'boolean', default: false },
      mode: { type: 'string' },
      'addr-base': { type: 'string' },
      port: { type: 'string', default: '8080' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values
} catch (e) {
  usage(e.message)
}
if (opts.help) usage('swarmd demo: a three-host swarm and the seed walkthrough')

const IP = which('ip', ['/usr/sbin/ip', '/sbin/ip'])
const mode = opts.mode ?? (process.getuid?.() === 0 && IP ? 'netns' : 'loopback')
if (mode !== 'netns' && mode !== 'loopback') usage(`--mode: netns or loopback, got "${opts.mode}"`)
if (mode === 'netns' && (process.getuid?.() !== 0 || !IP)) usage('--mode netns needs root and iproute2')
const port = Number(opts.port)
if (!Number.isInteger(port) || port < 1 || port > 65535) usage(`--port: a port number, got "${opts.port}"`)
const base = (opts['addr-base'] ?? (mode === 'netns' ? '10.99.0.1' : '127.0.0.1')).split('.').map(Number)
if (base.length !== 4 || base.some(n => !Number.isInteger(n) || n < 0 || n > 255) || base[3] < 1 || base[3] > 250) usage(`--addr-base: an IPv4 address whose last byte is 1-250, got "${opts['addr-base']}"`)
if (mode === 'loopback' && base[0] !== 127) usage('--addr-base: loopback mode needs a 127.x.y.z address')
const addrOf = i => [...base.slice(0, 3), base[3] + i].join('.')

// Kernel names carry our pid so two demos (or a demo and the tests) never share one.
const tag = String(process.pid)
const dir = mkdtempSync(join(tmpdir(), 'swarmd-demo-'))
const hosts = [0, 1, 2].map(i => ({
  name: `docker-swarm-${i + 1}`,
  ip: addrOf(i),
  sock: join(dir, `docker-swarm-${i + 1}.sock`),
  data: join(dir, `docker-swarm-${i + 1}`),
  log: join(dir, `docker-swarm-${i + 1}.log`),
  ns: `swarmd-demo-${tag}-${i + 1}`,
  veth: `sdv${tag}h${i + 1}`,
  peer: `sdv${tag}n${i + 1}`,
  proc: undefined,
  exited: undefined,
  id: undefined,
}))
const manager = hosts[2]
const workers = [hosts[0], hosts[1]]
const bridge = `sdbr${tag}`
const bridgeAddr = [...base.slice(0, 3), 254].join('.')
let firewallRule // iptables arguments of a FORWARD rule we added, to delete on teardown

const say = s => process.stdout.write(s.endsWith('\n') ? s : s + '\n')
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const quote = a => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)

/** A one-shot command that must succeed (kernel plumbing). */
function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout || r.error?.message || '').trim()}`)
  return r.stdout
}
const quiet = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' })

/** Each host a namespace with its address on eth0, lo up, all on one bridge that also gives this shell an address. */
function setUpNamespaces() {
  const subnet = `${base.slice(0, 3).join('.')}.0/24`
  if (sh(IP, ['-4', 'route', 'show']).split('\n').some(r => r.startsWith(`${subnet} `))) throw new Error(`${subnet} is already routed on this host; pick another with --addr-base`)
  sh(IP, ['link', 'add', 'name', bridge, 'type', 'bridge'])
  sh(IP, ['addr', 'add', `${bridgeAddr}/24`, 'dev', bridge])
  sh(IP, ['link', 'set', bridge, 'up'])
  for (const h of hosts) {
    sh(IP, ['netns', 'add', h.ns])
    sh(IP, ['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', h.peer])
    sh(IP, ['link', 'set', h.peer, 'netns', h.ns])
    sh(IP, ['-n', h.ns, 'link', 'set', h.peer, 'name', 'eth0'])
    sh(IP, ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0'])
    sh(IP, ['-n', h.ns, 'link', 'set', 'eth0', 'up'])
    sh(IP, ['-n', h.ns, 'link', 'set', 'lo', 'up'])
    sh(IP, ['link', 'set', h.veth, 'master', bridge, 'up'])
  }
  // Bridged frames pass through iptables when br_netfilter is loaded; a DROP policy (Docker sets one) would cut the hosts apart.
  const iptables = which('iptables', ['/usr/sbin/iptables', '/sbin/iptables'])
  if (iptables && /^-P FORWARD DROP/m.test(spawnSync(iptables, ['-S', 'FORWARD'], { encoding: 'utf8' }).stdout ?? '')) {
    const rule = ['FORWARD', '-i', bridge, '-o', bridge, '-m', 'comment', '--comment', `swarmd-demo-${tag}`, '-j', 'ACCEPT']
    sh(iptables, ['-I', ...rule])
    firewallRule = [iptables, rule]
  }
}

/** True once a daemon answers /_ping on its socket. */
function ping(sock) {
  return new Promise(resolve => {
    const req = request({ socketPath: sock, path: '/_ping' }, res => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.end()
  })
}

/** Polls `check` (a throw counts as not yet) until it holds; `giveUp` may end the wait early with its error. */
async function waitFor(what, check, timeoutMs, giveUp = () => undefined) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const fatal = giveUp()
    if (fatal) throw fatal
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`)
    await sleep(250)
  }
}

/** Starts a host's daemon in its own process group (Ctrl-C reaches only the demo, which stops them in order), logs to a file. */
async function startDaemon(h) {
  // The userspace mesh, whose balancing the walkthrough shows (three requests to each task); the kernel plane balances at random.
  const args = [SWARMD, '--data-dir', h.data, '-H', `unix://${h.sock}`, '--hostname', h.name, '--log-level', 'info', '--data-plane', 'userspace']
  if (mode === 'loopback') args.push('--ingress-addr', h.ip)
  let argv = mode === 'netns' ? [IP, 'netns', 'exec', h.ns, NODE, ...args] : [NODE, ...args]
  // The kernel kills the daemon if the demo dies without tearing down (setpriv execs, so the pid is the daemon's).
  const setpriv = which('setpriv')
  if (setpriv) argv = [setpriv, '--pdeathsig', 'KILL', '--', ...argv]
  const log = createWriteStream(h.log)
  await new Promise(resolve => log.once('open', resolve))
  h.proc = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', log, log] })
  h.exited = new Promise(resolve => h.proc.once('exit', resolve))
  h.proc.once('exit', () => log.close())
  const died = () => (h.proc.exitCode !== null || h.proc.signalCode !== null ? new Error(`${h.name} exited:\n${tail(h.log)}`) : undefined)
  await waitFor(`${h.name}'s API`, () => ping(h.sock), 60_000, died)
}

const tail = (file, n = 20) => {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n')
  } catch {
    return ''
  }
}

/** swarmctl against a daemon; the manager is reached through SWARMD_HOST, as the printed `export` says. */
function swarmctl(h, args) {
  const argv = h === manager ? args : ['-H', `unix://${h.sock}`, ...args]
  return new Promise((resolve, reject) => {
    const p = spawn(NODE, [SWARMCTL, ...argv], { env: { ...process.env, SWARMD_HOST: `unix://${manager.sock}` }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.setEncoding('utf8').on('data', d => (stdout += d))
    p.stderr.setEncoding('utf8').on('data', d => (stderr += d))
    p.once('error', reject)
    p.once('close', code => resolve({ code, stdout, stderr, argv }))
  })
}

/** Runs swarmctl and prints it as a terminal would: the command, then what it wrote. Fails the demo if it fails. */
async function show(h, ...args) {
  const r = await swarmctl(h, args)
  if (tornDown) throw new Error('interrupted')
  say(`\n$ swarmctl ${r.argv.map(quote).join(' ')}`)
  if (r.stdout) say(r.stdout)
  if (r.stderr) say(r.stderr)
  if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} exited with ${r.code}`)
  return r.stdout
}

/** Like `show` but silent: for the demo's own bookkeeping. */
async function ask(h, ...args) {
  const r = await swarmctl(h, args)
  if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

/** One HTTP GET through the mesh: the body, or the error. */
function get(ip) {
  return new Promise(resolve => {
    const req = request({ host: ip, port, path: '/', agent: false, timeout: 5_000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', d => (body += d))
      res.on('end', () => resolve(body.trim()))
    })
    req.on('error', e => resolve(`error: ${e.code ?? e.message}`))
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
    req.end()
  })
}

async function walkthrough() {
  say(`swarmd demo: three hosts, the manager on ${manager.name}`)
  for (const h of hosts) say(`  ${h.name}  ${h.ip}${mode === 'netns' ? `  (network namespace ${h.ns})` : '  (loopback)'}`)
  say(mode === 'netns' ? `  on bridge ${bridge} (${bridgeAddr} on this host)` : '  daemons share this host\'s network; published ports listen on each one\'s own address')
  say(`  state, sockets and logs in ${dir}`)
  if (mode === 'netns') setUpNamespaces()
  await Promise.all(hosts.map(startDaemon))

  say(`\n$ export SWARMD_HOST=unix://${manager.sock}`)
  await show(manager, 'swarm', 'init', '--advertise-addr', manager.ip, '--listen-addr', `${manager.ip}:2377`)
  const token = (await show(manager, 'swarm', 'join-token', '-q', 'worker')).trim()
  for (const w of workers) await show(w, 'swarm', 'join', '--token', token, '--advertise-addr', w.ip, `${manager.ip}:2377`)
  await waitFor('three Ready nodes', async () => ((await ask(manager, 'node', 'ls')).match(/\bReady\b/g) ?? []).length === 3, 60_000)
  await show(manager, 'node', 'ls')
  for (const h of hosts) h.id = JSON.parse(await ask(manager, 'node', 'inspect', h.name))[0].ID

  await show(manager, 'service', 'create', '--name', 'helloworld', '--replicas', '3', '--publish', `${port}:80`, 'node', 'node', '-e', TASK_JS)
  await show(manager, 'service', 'ls')
  await show(manager, 'service', 'ps', 'helloworld')

  await waitFor(`port ${port} answering on every host`, async () => (await Promise.all(hosts.map(h => get(h.ip)))).every(b => b.startsWith('hello from')), 60_000)
  say(`\n# Nine requests through the routing mesh, three to each host's address on ${port}:`)
  const answered = new Map()
  for (const h of hosts) {
    for (let i = 0; i < 3; i++) {
      const body = await get(h.ip)
      say(`GET http://${h.ip}:${port}/  ->  ${body}`)
      const who = /^hello from (\S+)/.exec(body)?.[1] ?? 'error'
      answered.set(who, (answered.get(who) ?? 0) + 1)
    }
  }
  say(`# answered by: ${[...answered].sort().map(([who, n]) => `${who} ${n}x`).join(', ')}`)

  await show(manager, 'service', 'scale', 'helloworld=5')
  await show(manager, 'service', 'ps', 'helloworld')
  await show(manager, 'service', 'logs', '--tail', '2', 'helloworld')
}

/** The process IDs whose environment names one of our nodes (task processes) or whose command line names our dir (daemons). */
function leftovers() {
  const ids = hosts.map(h => h.id).filter(Boolean)
  const pids = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'latin1').split('\0')
      const node = env.find(v => v.startsWith('SWARMD_NODE_ID='))?.slice('SWARMD_NODE_ID='.length)
      if ((node && ids.includes(node)) || readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(dir)) pids.push(Number(d))
    } catch {
      // gone, or not ours to read
    }
  }
  return pids
}

/** SIGKILL, where the process may be gone already. */
function quietKill(pid) {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

let tornDown
/** Stops the daemons (which stop their tasks), kills whatever survived, removes the namespaces, bridge and temp dir. */
function teardown() {
  tornDown ??= (async () => {
    say('\nTearing down ...')
    for (const h of hosts) if (h.proc && h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill('SIGTERM')
    const slow = setTimeout(() => hosts.forEach(h => h.proc?.kill('SIGKILL')), 10_000)
    await Promise.all(hosts.map(h => h.exited))
    clearTimeout(slow)
    for (const pid of leftovers()) quietKill(pid)
    if (mode === 'netns') {
      // The kernel data plane's task namespaces (swarmd-<node ID>-<task ID>): one whose task was starting when its daemon stopped outlives it.
      const netnsDir = '/run/netns'
      const taskNs = hosts.filter(h => h.id).flatMap(h => readdirSync(netnsDir).filter(n => n.startsWith(`swarmd-${h.id}-`)))
      for (const ns of taskNs) {
        for (const pid of spawnSync(IP, ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) quietKill(Number(pid))
        quiet(IP, ['netns', 'delete', ns])
        rmSync(join('/etc/netns', ns), { recursive: true, force: true })
      }
      for (const h of hosts) {
        quiet(IP, ['netns', 'delete', h.ns])
        quiet(IP, ['link', 'delete', h.veth])
      }
      quiet(IP, ['link', 'delete', bridge])
      if (firewallRule) quiet(firewallRule[0], ['-D', ...firewallRule[1]])
    }
    rmSync(dir, { recursive: true, force: true })
    say(mode === 'netns' ? `Stopped the three daemons and their tasks; removed ${hosts.map(h => h.ns).join(', ')}, ${bridge} and ${dir}.` : `Stopped the three daemons and their tasks; removed ${dir}.`)
  })()
  return tornDown
}

let onSignal
const signalled = new Promise(resolve => (onSignal = resolve))
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (tornDown) process.stderr.write('(still tearing down)\n')
    onSignal(sig)
  })
}

let code = 0
try {
  const walk = walkthrough()
  walk.catch(() => {}) // a signal may end the demo mid-walkthrough; the failure then is ours
  const how = await Promise.race([walk.then(() => 'done'), signalled])
  if (how === 'done' && !opts['no-wait']) {
    say(`\nCluster is up. Try:`)
    say(`  node bin/swarmctl.js -H unix://${manager.sock} node ls`)
    say(`  node bin/swarmctl.js -H unix://${manager.sock} service ps helloworld`)
    say(`  curl http://${hosts[0].ip}:${port}/`)
    say('Press Ctrl-C to tear down.')
    await signalled
  } else if (how !== 'done') code = 130
} catch (e) {
  process.stderr.write(`\ndemo failed: ${e.message}\n`)
  for (const h of hosts) if (tail(h.log)) process.stderr.write(`--- ${h.name} log (last lines) ---\n${tail(h.log, 10)}\n`)
  code = 1
} finally {
  await teardown()
}
process.exit(code)

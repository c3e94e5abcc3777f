/**
 * The cluster page in a real browser: headless Chromium (Debian's, driven
 * by playwright-core) loads the manager's page of a three-node loopback
 * swarm (127.0.17.1-3, the manager on .3); the test reads the rendered DOM
 * (a column per node with its status, availability and manager status, a
 * card per task, the services with their replicas and ports), sees a
 * scale-up arrive without a reload, kills a worker with SIGKILL and waits
 * for its column to turn grey and Down. Screenshots go to the test's temp
 * dir (and to $SWARMD_SCREENSHOT_DIR when set).
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { loopbackSwarm } from './helpers/daemon.js'
import { CHROMIUM, chromiumMissing, testNeeding } from './helpers/prerequisites.js'

const HELLO = 'require("http").createServer((q, s) => s.end("hi\\n")).listen(process.env.PORT)'
const IDLE = 'setInterval(() => {}, 1000)'

interface Column {
  hostname: string
  state: string
  badges: string[]
  tasks: { name: string; state: string; cls: string }[]
  filter: string
}

/** What the code run in the page uses of its elements (the project compiles without the DOM library). */
interface El {
  dataset: Record<string, string>
  className: string
  textContent: string | null
  querySelectorAll(selector: string): Iterable<El>
}
declare const getComputedStyle: (e: El) => { filter: string }
declare const document: { querySelectorAll(selector: string): { length: number } }

/** The node columns as the page renders them. */
function columns(page: Page): Promise<Column[]> {
  return page.$$eval('#nodes .node[data-hostname]', (cols: El[]) =>
    cols.map(c => ({
      hostname: c.dataset.hostname!,
      state: c.dataset.state!,
      badges: [...c.querySelectorAll('.badge')].map(b => b.textContent ?? ''),
      tasks: [...c.querySelectorAll('.task')].map(x => ({ name: x.dataset.taskName!, state: x.dataset.state!, cls: x.className })),
      filter: getComputedStyle(c).filter,
    })),
  )
}

testNeeding(t, 'the cluster page in Chromium', chromiumMissing, async t => {
  const s = await loopbackSwarm(t, { prefix: 'ui', name: i => `ui-node-${i}`, ip: i => `127.0.17.${i}`, args: h => ['--metrics-addr', `${h.ip}:9323`, '--ingress-addr', h.ip] })
  const [, w2, mgr] = s.hosts
  await s.ctl('service', 'create', '--name', 'web', '--replicas', '3', '--publish', '18280:80', 'node', 'node', '-e', HELLO)
  await s.ctl('service', 'create', '--name', 'api', '--replicas', '2', 'node', 'node', '-e', IDLE)
  await s.ctl('service', 'create', '--name', 'monitor', '--mode', 'global', 'node', 'node', '-e', IDLE)

  // Playwright's own switches keep Chromium from reaching out (no updates, no background networking) and give it a throw-away profile.
  const browser = await chromium.launch({ executablePath: CHROMIUM! })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } })
  const problems: string[] = []
  page.on('pageerror', e => problems.push(e.message))
  page.on('console', m => m.type() === 'error' && problems.push(m.text()))
  const shot = async (name: string): Promise<void> => {
    const path = join(s.dir, name)
    await page.screenshot({ path, fullPage: true })
    t.ok(existsSync(path), `screenshot ${path}`)
    const keep = process.env.SWARMD_SCREENSHOT_DIR
    if (keep) {
      mkdirSync(keep, { recursive: true })
      copyFileSync(path, join(keep, name))
    }
  }

  await page.goto(`http://${mgr.ip}:9323/`)
  // A function, not a string: polling a string predicate evaluates it in the page, which the page's CSP (no unsafe-eval) refuses once the first check fails.
  await page.waitForFunction(() => document.querySelectorAll('.task.state-running').length === 8, undefined, { timeout: 30_000 })
  let cols = await columns(page)
  t.same(
    cols.map(c => [c.hostname, ...c.badges]),
    [
      ['ui-node-3', 'Ready', 'Active', 'Leader'],
      ['ui-node-1', 'Ready', 'Active', 'Worker'],
      ['ui-node-2', 'Ready', 'Active', 'Worker'],
    ],
    'a column per node, the manager first: status, availability, manager status',
  )
  const names = cols.flatMap(c => c.tasks.map(x => x.name)).sort()
  t.same(names.filter(n => !n.startsWith('monitor.')), ['api.1', 'api.2', 'web.1', 'web.2', 'web.3'], 'a card per task')
  t.same(cols.map(c => c.tasks.filter(x => x.name.startsWith('monitor.')).length), [1, 1, 1], 'the global service once on each node')
  t.ok(cols.every(c => c.tasks.every(x => x.state === 'running' && x.cls.includes('state-running'))), 'cards coloured by their state: running')
  const services = await page.$$eval('#services tbody tr', (rows: El[]) => rows.map(r => [...r.querySelectorAll('td')].map(d => d.textContent)))
  t.same(services, [
    ['api', 'replicated', '2/2', '-', 'node'],
    ['monitor', 'global', '3/3', '-', 'node'],
    ['web', 'replicated', '3/3', '18280:80/tcp', 'node'],
  ])
  t.equal(await page.textContent('#live'), 'live')
  await shot('cluster.png')

  // A job that is done is short of nothing: Docker's `0/1 (1/1 completed)`, not in red.
  await s.ctl('service', 'create', '--name', 'once', '--mode', 'replicated-job', 'node', 'node', '-e', 'process.exit(0)')
  const once = '#services tr[data-service="once"] td.replicas'
  await page.waitForSelector(`${once}:text-is("0/1 (1/1 completed)")`, { timeout: 20_000 })
  t.notOk(await page.$eval(once, (d: El) => d.className.includes('short')), 'a completed job is not short')

  // Live: a scale-up shows without a reload.
  await s.ctl('service', 'scale', 'web=4')
  await page.waitForSelector('.task[data-task-name="web.4"].state-running', { timeout: 20_000 })
  t.pass('web.4 appeared on the open page')

  const killed = performance.now()
  await w2.proc!.stop({ signal: 'SIGKILL' })
  await page.waitForSelector('.node[data-hostname="ui-node-2"][data-state="down"]', { timeout: 30_000 })
  const secs = (performance.now() - killed) / 1000
  t.ok(secs < 20, `ui-node-2 Down on the page ${secs.toFixed(1)} s after kill -9`)
  await page.waitForTimeout(500)
  cols = await columns(page)
  const down = cols.find(c => c.hostname === 'ui-node-2')!
  t.same(down.badges, ['Down', 'Active', 'Worker'])
  t.match(down.filter, /grayscale\(1\)/, 'its column is grey')
  t.ok(cols.filter(c => c.hostname !== 'ui-node-2').every(c => c.state === 'ready' && !/grayscale/.test(c.filter)), 'the others are not')
  await shot('cluster-node-down.png')
  t.same(problems, [], 'no script error on the page')
})

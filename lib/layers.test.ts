import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

/**
 * The layers of DESIGN.md, lowest first: a folder of lib/ may import from
 * its own folder and from folders of a lower rank, never from one of the
 * same rank (manager and agent meet only in messages) or a higher one.
 * index.ts, the package's entry, sits above them all.
 */
const RANK: Record<string, number> = { types: 0, gossip: 1, control: 2, mesh: 2, manager: 3, agent: 3, node: 4, api: 5, cli: 6, '.': 7 }

const LIB = dirname(fileURLToPath(import.meta.url))

type Graph = Map<string, string[]>

const isTestFile = (file: string): boolean => /\.test(-helper)?\.ts$/.test(file)

/** Every .ts file under lib/ with the lib files it imports. Tests are left out: they may drive several layers at once. */
function importGraph(): Graph {
  const g: Graph = new Map()
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts') && !isTestFile(p)) {
        const deps = ts
          .preProcessFile(readFileSync(p, 'utf8'), true, true)
          .importedFiles.map(f => f.fileName)
          .filter(f => f.startsWith('.'))
          .map(f => relative(LIB, resolve(dirname(p), f.replace(/\.js$/, '.ts'))))
        g.set(relative(LIB, p), deps)
      }
    }
  }
  walk(LIB)
  return g
}

const folderOf = (file: string): string => (file.includes('/') ? file.split('/')[0]! : '.')

/** Imports that break the layering: "a -> b (folder -> folder)". */
export function layerViolations(g: Graph): string[] {
  const out: string[] = []
  for (const [file, deps] of g) {
    const from = folderOf(file)
    for (const dep of deps) {
      const to = folderOf(dep)
      if (to === from) continue
      const rf = RANK[from]
      const rt = RANK[to]
      if (rf === undefined || rt === undefined || rt >= rf) out.push(`${file} -> ${dep} (${from} -> ${to})`)
    }
  }
  return out
}

/** Groups of files that import each other in a cycle (Tarjan's strongly connected components of more than one file, or a file importing itself). */
export function fileCycles(g: Graph): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort())
    }
  }
  for (const v of g.keys()) if (!idx.has(v)) visit(v)
  return out
}

/** Cycles between folders: two folders each importing the other, directly or through others. */
export function folderCycles(g: Graph): string[][] {
  const fg: Graph = new Map()
  for (const [file, deps] of g) {
    const from = folderOf(file)
    const set = new Set(fg.get(from) ?? [])
    for (const d of deps) if (folderOf(d) !== from) set.add(folderOf(d))
    fg.set(from, [...set])
  }
  return fileCycles(fg)
}

t.test('the checks catch what they are for', async t => {
  const g: Graph = new Map([
    ['types/a.ts', []],
    ['manager/m.ts', ['types/a.ts', 'agent/x.ts']],
    ['agent/x.ts', ['manager/m.ts']],
    ['gossip/g.ts', ['node/n.ts']],
    ['node/n.ts', ['gossip/g.ts']],
  ])
  t.same(layerViolations(g), ['manager/m.ts -> agent/x.ts (manager -> agent)', 'agent/x.ts -> manager/m.ts (agent -> manager)', 'gossip/g.ts -> node/n.ts (gossip -> node)'])
  t.same(fileCycles(g), [['agent/x.ts', 'manager/m.ts'], ['gossip/g.ts', 'node/n.ts']])
  t.same(folderCycles(g), [['agent', 'manager'], ['gossip', 'node']])
})

t.test("lib's imports point down the layers, with no cycles", async t => {
  const g = importGraph()
  t.ok(g.size > 100, `read ${g.size} files`)
  t.same(layerViolations(g), [], 'no import against the layers')
  t.same(folderCycles(g), [], 'no cycle between folders')
  t.same(fileCycles(g), [], 'no cycle between files')
})

/** Reading what a daemon's --metrics-addr serves: the text format's samples, and promtool's verdict on it. */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { run } from './procs.js'

/** One sample of the text format: its name, its labels, its value. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of an exposition (comments skipped); label values unescaped as the format defines. */
export function parseSamples(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** The sum of a family's samples whose labels include `labels` (0 when there is none). */
export function total(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0)
}

/** GET /metrics at `addr` (IP:PORT): the text and its samples. */
export async function scrape(addr: string): Promise<{ text: string; samples: Sample[]; contentType: string }> {
  const r = await fetch(`http://${addr}/metrics`)
  if (r.status !== 200) throw new Error(`GET /metrics on ${addr}: ${r.status}`)
  const text = await r.text()
  return { text, samples: parseSamples(text), contentType: r.headers.get('content-type') ?? '' }
}

/** `promtool check metrics` over `text` (written into `dir` first): its exit code and what it said. */
export async function promtoolCheck(promtool: string, text: string, dir: string, name: string): Promise<{ code: number | null; output: string }> {
  const file = join(dir, `${name}.prom`)
  writeFileSync(file, text)
  const r = await run('sh', ['-c', '"$0" check metrics < "$1"', promtool, file])
  return { code: r.code, output: (r.stdout + r.stderr).trim() }
}

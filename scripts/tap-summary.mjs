// Prints "N passed, N failed" from tap's per-file results in .tap/test-results,
// counting every leaf assertion (the CI harness reads this line, not tap's own).
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

function files(dir) {
  let out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out = out.concat(files(p))
    else if (p.endsWith('.tap')) out.push(p)
  }
  return out
}

let passed = 0
let failed = 0
const root = process.argv[2] ?? '.tap/test-results'
for (const f of files(root)) {
  const lines = readFileSync(f, 'utf8').split('\n')
  let fileFailed = false
  let leaves = 0
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(not ok|ok) \d+/.exec(lines[i])
    if (!m) continue
    // A subtest's result line follows its children, which are indented deeper: count leaves only.
    const indent = m[1].length
    const prev = lines.slice(Math.max(0, i - 400), i).reverse().find(l => /^\s*(not ok|ok) \d+/.test(l) || /^\s*# Subtest:/.test(l))
    const isParent = /# (SKIP|TODO)/.test(lines[i]) ? false : prev !== undefined && /^\s*/.exec(prev)[0].length > indent
    if (isParent) continue
    leaves++
    if (m[2] === 'not ok' && !/# TODO/.test(lines[i])) {
      failed++
      fileFailed = true
    } else passed++
  }
  // A file that died before reporting anything is a failure too.
  if (leaves === 0 && !/^1\.\.0/m.test(lines.join('\n'))) {
    failed++
    fileFailed = true
  }
  if (fileFailed) process.stderr.write(`failed: ${f}\n`)
}
console.log(`${passed} passed, ${failed} failed`)

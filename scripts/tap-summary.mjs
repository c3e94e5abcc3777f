// Prints "N passed, N failed, N skipped" for a tap run (the line CI reads).
//
//   node scripts/tap-summary.mjs RUN.tap [FILES]
//
// RUN.tap is the runner's raw TAP (`tap --output-file RUN.tap`): one subtest
// per test file, closed by tap's own verdict on it, which is the only record
// that knows how the file's process ended (exitCode, signal, timeout). The
// per-file .tap/test-results hold only what the file printed, so a file that
// exited 3 or was killed after passing assertions looks fine there, and
// .tap/processinfo is written by the file's process itself, so a SIGKILL
// leaves no trace. FILES (`tap list`) names every file that should have run:
// one without a verdict (a bailout, a runner that died) is failed too.
//
// Leaf assertions are counted (a subtest without any is one); a skipped or
// TODO one is a skip, not a pass; a file or subtest that failed without a
// failing assertion counts one failure.
// Exits 1 when anything failed. What failed or skipped, and why, goes to stderr.
import { readFileSync } from 'node:fs'
import { Parser } from 'tap-parser'

/** Why a subtest's closing point says it failed, from tap's diagnostics. */
function failure(r, tally) {
  const d = r.diag ?? {}
  if (d.signal) return `killed by ${d.signal}`
  if (d.exitCode !== undefined && d.exitCode !== null && d.exitCode !== 0) return `exit code ${d.exitCode}`
  if (tally.failed) return `${tally.failed} failed`
  return 'failed'
}

/**
 * Counts what one parser level (and everything under it) reports.
 * `path` names it in messages; `notes` collects them.
 */
function watch(p, path, notes) {
  const tally = { passed: 0, failed: 0, skipped: 0, closed: false, bailout: undefined }
  let open
  const merge = (sub, r) => {
    tally.passed += sub.passed
    tally.failed += sub.failed
    tally.skipped += sub.skipped
    if (!r) {
      // Its process or the run ended before tap closed it.
      if (!sub.failed) tally.failed++
      notes.push(`failed: ${sub.name}: ${sub.bailout !== undefined ? `bailed out (${sub.bailout})` : 'never finished'}`)
      return
    }
    sub.closed = true
    if (r.todo || r.skip) {
      if (sub.passed + sub.failed + sub.skipped === 0) {
        tally.skipped++
        notes.push(`skipped: ${sub.name}: ${r.todo ? 'TODO' : 'SKIP'} ${r.todo || r.skip}`)
      }
    } else if (!r.ok) {
      if (!sub.failed) tally.failed++
      notes.push(`failed: ${sub.name}: ${failure(r, sub)}`)
    } else if (sub.passed + sub.skipped === 0) {
      // A subtest that asserted nothing through tap (a fast-check property, say) is its own leaf, as tap counts it.
      tally.passed++
    }
  }
  p.on('child', c => {
    if (open) merge(open)
    open = watch(c, path ? `${path} > ${c.name}` : c.name, notes)
    open.name = path ? `${path} > ${c.name}` : c.name
  })
  p.on('assert', r => {
    if (r.closingTestPoint && open) {
      merge(open, r)
      open = undefined
      return
    }
    const name = `${path ? `${path} > ` : ''}${r.name}`
    if (r.todo || r.skip) {
      tally.skipped++
      notes.push(`skipped: ${name}: ${r.todo ? 'TODO' : 'SKIP'} ${r.todo || r.skip}`)
    } else if (r.ok) tally.passed++
    else tally.failed++
  })
  p.on('bailout', reason => (tally.bailout = reason))
  p.on('complete', () => {
    if (open) {
      open.bailout ??= tally.bailout
      merge(open)
      open = undefined
    }
  })
  return tally
}

function summarize(tap, expected) {
  const notes = []
  const files = new Set()
  const parser = new Parser()
  parser.on('child', c => files.add(c.name))
  const total = watch(parser, '', notes)
  parser.end(tap)
  for (const f of expected) {
    if (files.has(f)) continue
    total.failed++
    notes.push(`failed: ${f}: no result (the run stopped before it${total.bailout !== undefined ? `: bailed out (${total.bailout})` : ''})`)
  }
  if (files.size === 0 && expected.length === 0) {
    total.failed++
    notes.push('failed: the run reported no test file')
  }
  return { ...total, notes }
}

const [runFile, listFile] = process.argv.slice(2)
if (!runFile) {
  process.stderr.write('usage: node scripts/tap-summary.mjs RUN.tap [FILES]\n')
  process.exit(2)
}
const read = f => {
  try {
    return readFileSync(f, 'utf8')
  } catch (e) {
    process.stderr.write(`tap-summary: cannot read ${f}: ${e.message}\n`)
    return ''
  }
}
const expected = listFile ? read(listFile).split('\n').map(l => l.trim()).filter(Boolean) : []
const s = summarize(read(runFile), expected)
for (const n of s.notes) process.stderr.write(`${n}\n`)
console.log(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`)
process.exitCode = s.failed ? 1 : 0

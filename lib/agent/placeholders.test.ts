import fc from 'fast-check'
import t from 'tap'
import { SwarmdError } from '../types/errors.js'
import { thrown } from '../test-helpers.test-helper.js'
import { expandPlaceholders, templateContext } from './placeholders.js'

const task = { id: 'tid123', serviceId: 'sid456', serviceName: 'web', slot: 2, nodeId: 'nid789', nodeHostname: 'host-a' }
const ctx = templateContext(task, { OS: 'linux', Architecture: 'x86_64' })

t.test('every placeholder of a replicated task', async t => {
  const cases: [string, string][] = [
    ['{{.Task.Slot}}', '2'],
    ['{{.Task.ID}}', 'tid123'],
    ['{{.Task.Name}}', 'web.2.tid123'],
    ['{{.Node.ID}}', 'nid789'],
    ['{{.Node.Hostname}}', 'host-a'],
    ['{{.Node.Platform.OS}}', 'linux'],
    ['{{.Node.Platform.Architecture}}', 'x86_64'],
    ['{{.Service.Name}}', 'web'],
    ['{{.Service.ID}}', 'sid456'],
    ['NAME={{.Service.Name}}-{{ .Task.Slot }}', 'NAME=web-2'],
    ['a {{- .Task.Slot -}} \n b', 'a2b'],
    ['x{{/* a comment */}}y', 'xy'],
    ['no placeholders } { here', 'no placeholders } { here'],
  ]
  for (const [input, want] of cases) t.equal(expandPlaceholders(input, ctx), want, input)
})

t.test('a global task (slot 0) uses the node ID as its slot, as swarmkit', async t => {
  const g = templateContext({ ...task, slot: 0 })
  t.equal(expandPlaceholders('{{.Task.Slot}}', g), 'nid789')
  t.equal(expandPlaceholders('{{.Task.Name}}', g), 'web.nid789.tid123')
})

t.test('what Go templates would fail on throws a clear error', async t => {
  const cases: [string, RegExp][] = [
    ['{{.Task.Foo}}', /can't evaluate field Foo/],
    ['{{.Tasks.ID}}', /can't evaluate field Tasks/],
    ['{{.Task.ID.X}}', /can't evaluate field X/],
    ['{{.Task}}', /Task is not a single value/],
    ['{{.Task.Slot', /unclosed action/],
    ['{{upper .Task.ID}}', /unsupported action \{\{upper \.Task\.ID\}\}/],
    ['{{.}}', /unsupported action/],
    ['{{.Task.constructor}}', /can't evaluate field constructor/],
  ]
  for (const [input, re] of cases) {
    const err = thrown(t, () => expandPlaceholders(input, ctx))
    t.ok(err instanceof SwarmdError, input)
    t.equal((err as SwarmdError).code, 'E_TEMPLATE')
    t.match((err as Error).message, /^template: expansion: /)
    t.match((err as Error).message, re, input)
  }
})

t.test('property: text around placeholders is kept, each placeholder becomes its value', async () => {
  const fields = ['.Task.Slot', '.Task.ID', '.Task.Name', '.Node.ID', '.Node.Hostname', '.Service.Name', '.Service.ID'] as const
  const value = (f: (typeof fields)[number]): string => {
    const [, a, b] = f.split('.') as [string, 'Task' | 'Node' | 'Service', string]
    return (ctx[a] as Record<string, string>)[b] ?? ''
  }
  // Plain text never holds "{{"; a lone brace is fine.
  const text = fc.string({ unit: fc.constantFrom('a', ' ', '{', '}', '-', '.', 'é') }).map(s => s.replace(/\{+/g, '{'))
  const safeText = text.filter(s => !s.endsWith('{'))
  fc.assert(
    fc.property(fc.array(fc.tuple(safeText, fc.constantFrom(...fields))), text, (parts, tail) => {
      const input = parts.map(([s, f]) => `${s}{{${f}}}`).join('') + tail
      const want = parts.map(([s, f]) => s + value(f)).join('') + tail
      return expandPlaceholders(input, ctx) === want
    }),
    { numRuns: 500 },
  )
})

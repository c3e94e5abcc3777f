import t from 'tap'
import { SwarmdError } from './errors.js'

t.test('SwarmdError keeps code, name and cause', async t => {
  const cause = new Error('inner')
  const e = new SwarmdError('E_TEST', 'outer', { cause })
  t.equal(e.code, 'E_TEST')
  t.equal(e.name, 'SwarmdError')
  t.equal(e.cause, cause)
  t.ok(e instanceof Error)
})

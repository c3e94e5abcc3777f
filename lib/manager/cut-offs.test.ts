import t from 'tap'
import { CutOffs } from './cut-offs.js'

const GAP = 10

t.test('three rotations per set, a gap apart; sets are independent', async t => {
  const c = new CutOffs()
  t.same(c.due(0, GAP), [], 'nothing owed')
  c.owe('a')
  t.same(c.due(0, GAP), ['a'], 'the first at once')
  t.same(c.due(5, GAP), [], 'not before the gap ends')
  c.owe('b')
  t.same(c.due(5, GAP), ['b'], 'another set does not wait for the first')
  t.same(c.due(10, GAP), ['a'])
  t.same(c.due(20, GAP), ['a', 'b'])
  t.same(c.due(30, GAP), ['b'])
  t.same(c.due(1000, GAP), [], 'three each, then none')
})

t.test('a cut-off owed again restarts the count but keeps the gap after the last rotation', async t => {
  const c = new CutOffs()
  c.owe('a')
  t.same(c.due(0, GAP), ['a'])
  c.owe('a')
  t.same(c.due(1, GAP), [], 'the rotation just done is not followed at once')
  t.same(c.due(10, GAP), ['a'])
  t.same(c.due(20, GAP), ['a'])
  t.same(c.due(30, GAP), ['a'], 'three from when it was owed again')
  t.same(c.due(40, GAP), [])
  c.owe('a')
  t.same(c.due(45, GAP), ['a'], 'long after the last: at once')
})

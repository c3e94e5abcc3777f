import t from 'tap'
import { Awareness } from './awareness.js'

t.test('starts healthy and scales nothing', async t => {
  const a = new Awareness(8)
  t.equal(a.getHealthScore(), 0)
  t.equal(a.scaleTimeout(1000), 1000)
})

t.test('deltas are clamped to 0..max-1', async t => {
  const a = new Awareness(8)
  a.applyDelta(-1)
  t.equal(a.getHealthScore(), 0, 'floor at 0')
  a.applyDelta(3)
  t.equal(a.getHealthScore(), 3)
  a.applyDelta(100)
  t.equal(a.getHealthScore(), 7, 'ceiling at max-1')
  a.applyDelta(-2)
  t.equal(a.getHealthScore(), 5)
  a.applyDelta(-100)
  t.equal(a.getHealthScore(), 0)
})

t.test('scaleTimeout multiplies by score+1 (LAN probe interval 1 s .. 8 s)', async t => {
  const a = new Awareness(8)
  for (let score = 0; score < 8; score++) {
    t.equal(a.getHealthScore(), score)
    t.equal(a.scaleTimeout(1000), 1000 * (score + 1))
    a.applyDelta(1)
  }
  t.equal(a.scaleTimeout(1000), 8000, 'railed at the top')
  t.equal(a.scaleTimeout(500), 4000)
})

t.test('max 1 pins the score at 0', async t => {
  const a = new Awareness(1)
  a.applyDelta(5)
  t.equal(a.getHealthScore(), 0)
  t.equal(a.scaleTimeout(200), 200)
})

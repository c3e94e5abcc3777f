import t from 'tap'
import { decisions, node, pass, service, T0, task } from './fixtures.test-helper.js'
import { historyKept, trimHistory } from './history.js'

t.test('the newest ended tasks of each slot stay; older ones are forgotten; live ones never', async t => {
  const svc = service('web')
  const ended = [0, 1, 2, 3, 4, 5, 6].map(i => task(svc, { state: 'failed', desired: 'shutdown', created: T0 + i * 1_000 }))
  const live = task(svc, { created: T0 + 10_000 })
  const stopping = task(svc, { state: 'running', desired: 'shutdown', created: T0 - 1_000 })
  const p = pass(T0, [node('a')], [svc], [...ended, live, stopping])
  trimHistory(p, [[...ended, live, stopping]], 5)
  t.same(decisions(p), { [ended[0]!.ID]: 'deleted', [ended[1]!.ID]: 'deleted' }, 'the two oldest of seven ended tasks')
})

t.test('the restart policy may keep more: enough to count its attempts', async t => {
  t.equal(historyKept(5, 0), 5)
  t.equal(historyKept(5, 10), 11)
})

import t from 'tap'
import { decisions, node, pass, service, task } from './fixtures.test-helper.js'
import { reapOrphans } from './orphans.js'

t.test("tasks whose service is gone are stopped where they run, and forgotten once over or unreachable", async t => {
  const kept = service('kept')
  const gone = service('gone')
  const running = task(gone, { node: 'a' })
  const over = task(gone, { node: 'a', state: 'complete' })
  const onDown = task(gone, { node: 'b' })
  const removing = task(gone, { node: 'a', desired: 'remove' })
  const mine = task(kept, { node: 'a' })
  const p = pass(0, [node('a'), node('b', { ready: false })], [kept], [running, over, onDown, removing, mine])
  reapOrphans(p)
  t.same(decisions(p), { [running.ID]: 'remove', [over.ID]: 'deleted', [onDown.ID]: 'deleted' })
})

import t from 'tap'
import { FlowTable } from './tunnel-flows.js'

t.test('a reply matches its flow only from the flow\'s peer and network', async (t) => {
  const flows = new FlowTable()
  const id = flows.add({ peer: '10.0.0.2:4789', vni: 4096, onReply: () => {} })
  t.equal(typeof flows.match(id, 4096, '10.0.0.2:4789'), 'object')
  t.equal(flows.match(id, 4097, '10.0.0.2:4789'), 'reply_wrong_peer', 'another network')
  t.equal(flows.match(id, 4096, '10.0.0.3:4789'), 'reply_wrong_peer', 'another host')
  t.equal(flows.match(id, 4096, '10.0.0.2:4790'), 'reply_wrong_peer', 'another port')
  t.equal(flows.match(id ^ 1, 4096, '10.0.0.2:4789'), 'reply_unknown_flow')
  flows.delete(id)
  t.equal(flows.match(id, 4096, '10.0.0.2:4789'), 'reply_unknown_flow')
  const ids = new Set(Array.from({ length: 1000 }, () => flows.add({ peer: 'x:1', vni: 1, onReply: () => {} })))
  t.equal(ids.size, 1000, 'never reused while live')
  t.notOk(ids.has(0))
})

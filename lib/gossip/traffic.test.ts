import t from 'tap'
import { makeCompound } from './compound.js'
import { encodeAck, encodePing, MsgType } from './messages.js'
import { countMessage, countOutgoing, emptyMessageCounts } from './traffic.js'

t.test('a compound is counted by its parts, each with its type and size', async t => {
  const ping = encodePing({ seqNo: 1, node: 'a', sourceAddr: '10.0.0.1', sourcePort: 7946, sourceNode: 'b' })
  const ack = encodeAck({ seqNo: 1, payload: Buffer.alloc(0) })
  const c = emptyMessageCounts()
  countOutgoing(c, makeCompound([ping, ack, ack]))
  countOutgoing(c, ping)
  t.same(c.messages, { ping: 2, ack: 2 })
  t.same(c.bytes, { ping: 2 * ping.length, ack: 2 * ack.length })
})

t.test('names follow the metric convention; unknown types and empty messages are not counted', async t => {
  const c = emptyMessageCounts()
  countMessage(c, Buffer.from([MsgType.indirectPing, 0]))
  countMessage(c, Buffer.from([MsgType.pushPull]))
  countMessage(c, Buffer.from([200, 1, 2]))
  countMessage(c, Buffer.alloc(0))
  t.same(c.messages, { indirect_ping: 1, push_pull: 1 })
})

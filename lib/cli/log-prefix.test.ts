import t from 'tap'
import fc from 'fast-check'
import { Demuxer, formatLogLine, logContext, parseDetails, parseLogLine, sinceParam } from './log-prefix.js'
import { parseGoDuration } from './service-flags.js'

/** A frame as the daemon writes it: [stream, 0, 0, 0, size u32 BE] + payload. */
function frame(stream: number, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload
  const h = Buffer.alloc(8)
  h[0] = stream
  h.writeUInt32BE(body.length, 4)
  return Buffer.concat([h, body])
}

const CTX = 'com.docker.swarm.node.id=node1,com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=task1'

t.test('demuxes a hand-made stream, frames split anywhere across chunks', async t => {
  const wire = Buffer.concat([frame(1, `${CTX} hello\n`), frame(2, `${CTX} oops\n`), frame(1, '')])
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new Demuxer()
    const frames = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))]
    t.same(
      frames.map(f => [f.stream, f.payload.toString()]),
      [
        ['stdout', `${CTX} hello\n`],
        ['stderr', `${CTX} oops\n`],
        ['stdout', ''],
      ],
      `cut at ${cut}`,
    )
    t.equal(d.pending, 0)
  }
  const d = new Demuxer()
  t.same(d.push(wire.subarray(0, 5)), [])
  t.equal(d.pending, 5, 'a partial header waits')
})

t.test('any sequence of frames in any chunking comes back whole', async t => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(1, 2), fc.uint8Array({ maxLength: 300 }))),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }),
      (frames, sizes) => {
        const wire = Buffer.concat(frames.map(([s, p]) => frame(s, Buffer.from(p))))
        const d = new Demuxer()
        const got = []
        for (let i = 0, k = 0; i < wire.length; k++) {
          const n = sizes[k % sizes.length]!
          got.push(...d.push(wire.subarray(i, i + n)))
          i += n
        }
        return got.length === frames.length && got.every((f, i) => f.stream === (frames[i]![0] === 2 ? 'stderr' : 'stdout') && Buffer.compare(f.payload, Buffer.from(frames[i]![1])) === 0)
      },
    ),
  )
})

t.test('a systemerr frame or an unknown stream is an error', async t => {
  t.throws(() => new Demuxer().push(frame(3, 'boom')), { message: 'error from daemon in stream: boom' })
  t.throws(() => new Demuxer().push(frame(7, 'x')), { message: 'Unrecognized input header: 7' })
})

t.test('log lines: details carry the task context; the rest stays for --details', async t => {
  const l = parseLogLine(`${CTX},env%3Dx=a+b%2Cc hello world\n`, false)
  t.equal(l.nodeID, 'node1')
  t.equal(l.serviceID, 'svc1')
  t.equal(l.taskID, 'task1')
  t.same([...l.details], [['env=x', 'a b,c']])
  t.equal(l.message, 'hello world\n')
  t.notOk('timestamp' in l)
  const ts = parseLogLine(`2024-05-01T12:00:00.000000000Z ${CTX} hi\n`, true)
  t.equal(ts.timestamp, '2024-05-01T12:00:00.000000000Z')
  t.equal(ts.message, 'hi\n')
  t.equal(parseLogLine(`${CTX} \n`, false).message, '\n', 'an empty line')
  t.throws(() => parseLogLine('nospace', false), { message: 'invalid context in log message: nospace' })
  t.throws(() => parseLogLine('com.docker.swarm.node.id=n msg', false), /missing service id in details/)
  t.throws(() => parseDetails('novalue'), /invalid details format/)
  t.same(parseDetails(''), new Map())
})

t.test('prefix: name.slot.task@node padded to the widest slot, then "    | "', async t => {
  const base = { service: 'web', taskID: 'dxe3rxefxdinabcdefghijklm', node: 'picocluster4' }
  t.equal(logContext({ ...base, slot: 1, replicas: 1 }), 'web.1.dxe3rxefxdin@picocluster4')
  t.equal(logContext({ ...base, slot: 1, replicas: 10 }), 'web.1.dxe3rxefxdin@picocluster4 ')
  t.equal(logContext({ ...base, slot: 10, replicas: 10 }), 'web.10.dxe3rxefxdin@picocluster4')
  t.equal(logContext({ ...base, slot: 3, replicas: 100 }), 'web.3.dxe3rxefxdin@picocluster4  ')
  t.equal(logContext({ ...base, slot: 1, replicas: 3, noTaskIDs: true }), 'web.1@picocluster4')
  t.equal(logContext({ ...base, slot: 1, replicas: 3, noTrunc: true }), 'web.1.dxe3rxefxdinabcdefghijklm@picocluster4')
  t.equal(logContext({ ...base, slot: 0, replicas: 1 }), 'web.0.dxe3rxefxdin@picocluster4', 'global tasks print slot 0')
  const line = parseLogLine(`2024-05-01T12:00:00.000000000Z ${CTX},b=2,a=1 GET / 200\n`, true)
  t.equal(formatLogLine(line, 'web.1.x@n', false), '2024-05-01T12:00:00.000000000Z web.1.x@n    | GET / 200\n')
  t.equal(formatLogLine(line, 'web.1.x@n', true), '2024-05-01T12:00:00.000000000Z web.1.x@n    | a=1,b=2 GET / 200\n')
})

t.test('--since as the unix seconds the API takes', async t => {
  const now = Date.parse('2024-05-01T12:00:00.250Z')
  t.equal(sinceParam('42m', now, parseGoDuration), `${(now - 42 * 60_000 - 250) / 1000}.250000000`)
  t.equal(sinceParam('2013-01-02T13:23:37Z', now, parseGoDuration), '1357133017.000000000')
  t.equal(sinceParam('1700000000.5', now, parseGoDuration), '1700000000.5')
  t.throws(() => sinceParam('yesterday', now, parseGoDuration), { message: 'failed to parse value as time or duration: "yesterday"' })
})

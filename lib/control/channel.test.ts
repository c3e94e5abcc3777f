import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { MemoryStream } from '../../bench/fuzz/memory-stream.js'
import { Channel, ChannelError } from './channel.js'

/** A length-prefixed frame around `body`, with the length it claims (default its own). */
const frame = (body: Uint8Array, claimed = body.length): Buffer => {
  const h = Buffer.alloc(4)
  h.writeUInt32BE(claimed >>> 0, 0)
  return Buffer.concat([h, body])
}

/** `bytes` delivered in pieces cut at `cuts`. */
function deliverCut(s: MemoryStream, bytes: Buffer, cuts: number[]): void {
  let at = 0
  for (const c of [...new Set(cuts.map(c => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    s.deliver(bytes.subarray(at, c))
    at = c
  }
  s.deliver(bytes.subarray(at))
}

/** Every message the channel yields until it refuses; the refusal (undefined if none within 1 s). */
async function drain(ch: Channel): Promise<{ got: unknown[]; refusal: unknown }> {
  const got: unknown[] = []
  for (;;) {
    try {
      got.push(await ch.recv(1_000))
    } catch (e) {
      return { got, refusal: e }
    }
  }
}

t.test('messages cross however the bytes are cut', async t => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.jsonValue(), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), async (msgs, cuts) => {
      const out = new MemoryStream()
      const sender = new Channel(out)
      for (const m of msgs) sender.send(m)
      const s = new MemoryStream()
      const ch = new Channel(s)
      deliverCut(s, Buffer.concat(out.sent), cuts)
      s.end()
      const { got, refusal } = await drain(ch)
      // JSON has no -0: what crosses is what JSON.stringify says.
      return isDeepStrictEqual(got, msgs.map(m => JSON.parse(JSON.stringify(m)))) && (refusal as ChannelError).code === 'E_CHANNEL_CLOSED'
    }),
    { numRuns: 300 },
  )
  t.pass('300 runs, each message in order, then the end of the stream')
})

t.test('fuzz: malformed frames end the stream with a ChannelError, never another error or a hang', async t => {
  const valid = fc.jsonValue({ maxDepth: 3 }).map(v => frame(Buffer.from(JSON.stringify(v))))
  const piece = fc.oneof(
    valid,
    fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b)),
    fc.uint8Array({ maxLength: 40 }).map(b => frame(b)),
    fc.string({ maxLength: 30 }).map(s => frame(Buffer.from(s))),
    fc.integer({ min: 4 * 1024 * 1024 + 1, max: 0xffffffff }).map(n => frame(Buffer.alloc(0), n)),
    fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 100 })).map(([b, extra]) => frame(b, b.length + extra)),
  )
  const codes: Record<string, number> = {}
  let messages = 0
  await fc.assert(
    fc.asyncProperty(fc.array(piece, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), async (pieces, cuts) => {
      const s = new MemoryStream()
      const ch = new Channel(s)
      deliverCut(s, Buffer.concat(pieces), cuts)
      s.end()
      const { got, refusal } = await drain(ch)
      messages += got.length
      if (!(refusal instanceof ChannelError)) return false
      codes[refusal.code] = (codes[refusal.code] ?? 0) + 1
      // A malformed frame aborts the stream; only a clean end closes it without.
      return ['E_CHANNEL_JSON', 'E_CHANNEL_FRAME'].includes(refusal.code) === (s.aborted !== undefined)
    }),
    { numRuns: 2_000 },
  )
  t.ok(codes.E_CHANNEL_JSON && codes.E_CHANNEL_FRAME && codes.E_CHANNEL_CLOSED, `every refusal seen: ${JSON.stringify(codes)}`)
  t.ok(messages > 0, `${messages} valid messages read among them`)
})

t.test('a frame that announces more than 4 MiB is refused before it is buffered', async t => {
  const s = new MemoryStream()
  const ch = new Channel(s)
  s.deliver(frame(Buffer.alloc(0), 4 * 1024 * 1024 + 1))
  await t.rejects(ch.recv(100), { code: 'E_CHANNEL_FRAME', message: 'control frame of 4194305 bytes exceeds 4194304' })
  t.ok(s.aborted, 'and the stream is aborted')
})

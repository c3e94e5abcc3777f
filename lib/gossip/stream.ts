import type { Duplex } from 'node:stream'
import { encryptionEnabled, PacketError, type WireSecurity, addLabel, checkLabel, compressMessage, decompressPayload } from './packet.js'
import { decodeCompress, MsgType } from './messages.js'
import { type DecodedMap, EMPTY, MsgpackReader, MsgpackTruncatedError } from './msgpack.js'
import { decryptPayload, encryptPayload } from './security.js'

/** Limits from newer memberlist: they bound what a hostile peer can make us buffer. */
export const MAX_ENCRYPTED_STREAM = 20 * 1024 * 1024
export const MAX_STREAM_BYTES = 40 * 1024 * 1024

/**
 * Reads a memberlist stream: buffers what arrives and lets the caller take
 * msgpack structs and raw byte runs, waiting for more data when a value is
 * cut. After the first frame is decrypted or decompressed, it reads from
 * that plaintext instead of the socket.
 */
export class StreamReader {
  /**
   * What arrived and is not consumed yet, as a list: joined only when a read
   * needs it, so a large frame in many small chunks costs linear time, not
   * quadratic (a hostile peer could otherwise make us copy gigabytes).
   */
  private chunks: Buffer[] = []
  private len = 0
  private ended = false
  private error: Error | undefined
  private wake: (() => void) | undefined
  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk)
    this.len += chunk.length
    if (this.len > MAX_STREAM_BYTES) this.fail(new PacketError('oversize', 'stream exceeds the size limit'))
    this.wake?.()
  }
  private readonly onEnd = (): void => {
    this.ended = true
    this.wake?.()
  }
  private readonly onError = (e: Error): void => this.fail(e)

  constructor(private source?: Duplex) {
    source?.on('data', this.onData)
    source?.on('end', this.onEnd)
    source?.on('close', this.onEnd)
    source?.on('error', this.onError)
  }

  /** A reader over bytes already in memory. */
  static of(buf: Buffer): StreamReader {
    const r = new StreamReader()
    r.replace(buf)
    return r
  }

  private fail(e: Error): void {
    this.error ??= e
    this.wake?.()
  }

  private replace(buf: Buffer): void {
    this.chunks = buf.length > 0 ? [buf] : []
    this.len = buf.length
    this.ended = true
  }

  /** Waits until at least `want` bytes are buffered; rejects if the stream ends first. */
  private async fill(want: number): Promise<void> {
    while (this.len < want) {
      if (this.error) throw this.error
      if (this.ended) throw new PacketError('truncated', 'stream ended early')
      await new Promise<void>(resolve => (this.wake = resolve))
      this.wake = undefined
    }
    if (this.error) throw this.error
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.len)]
    return this.chunks[0] ?? EMPTY
  }

  private consume(n: number): Buffer {
    const b = this.flat()
    this.chunks = n < b.length ? [b.subarray(n)] : []
    this.len -= n
    return b.subarray(0, n)
  }

  /** Stops reading the socket and continues from `plain` (a decrypted or decompressed frame). */
  private switchTo(plain: Buffer): void {
    this.detach()
    this.replace(plain)
  }

  detach(): void {
    const s = this.source
    if (!s) return
    s.off('data', this.onData)
    s.off('end', this.onEnd)
    s.off('close', this.onEnd)
    s.off('error', this.onError)
    this.source = undefined
  }

  async bytes(n: number): Promise<Buffer> {
    await this.fill(n)
    return this.consume(n)
  }

  async byte(): Promise<number> {
    return (await this.bytes(1))[0]!
  }

  async peek(): Promise<number> {
    await this.fill(1)
    return this.flat()[0]!
  }

  /**
   * The next msgpack value, which must be a map. A cut value is retried only
   * once the bytes it was known to need have arrived, so a huge value (a
   * compressed frame's Buf) is joined once, not once per chunk.
   */
  async struct(): Promise<DecodedMap> {
    let want = 1
    for (;;) {
      await this.fill(want)
      const r = new MsgpackReader(this.flat())
      try {
        const m = r.struct()
        this.consume(r.pos)
        return m
      } catch (e) {
        if (!(e instanceof MsgpackTruncatedError)) throw new PacketError('decode', 'bad msgpack in stream', { cause: e })
        if (this.ended) throw new PacketError('truncated', 'stream ended inside a value')
        want = Math.max(e.needed, this.len + 1)
      }
    }
  }

  /**
   * Reads the stream's label header (if any) and checks it. Returns the
   * label to use as additional data for this stream's encryption.
   */
  async readLabel(sec: WireSecurity): Promise<string> {
    let label = ''
    if ((await this.peek()) === MsgType.hasLabel) {
      await this.byte()
      const n = await this.byte()
      if (n === 0) throw new PacketError('label', 'label header with empty label')
      label = (await this.bytes(n)).toString('utf8')
    }
    if (sec.skipInboundLabelCheck) {
      if (label) throw new PacketError('label', 'unexpected double stream label header')
      return sec.label
    }
    checkLabel(label, sec)
    return label
  }

  /**
   * Reads the frame's type byte, unwrapping encryption and compression.
   * After this, structs and bytes come from the frame's plaintext.
   */
  async readFrameType(sec: WireSecurity, label: string): Promise<number> {
    let type = await this.byte()
    if (type === MsgType.encrypt) {
      if (!encryptionEnabled(sec)) throw new PacketError('decrypt', 'Remote state is encrypted and encryption is not configured')
      const lenBuf = await this.bytes(4)
      const len = lenBuf.readUInt32BE(0)
      if (len > MAX_ENCRYPTED_STREAM) throw new PacketError('oversize', `Remote node state is larger than limit (${len})`)
      const blob = await this.bytes(len)
      const aad = Buffer.concat([Buffer.from([MsgType.encrypt]), lenBuf, Buffer.from(label)])
      let plain: Buffer
      try {
        plain = decryptPayload(sec.keyring!.view(), blob, aad)
      } catch (e) {
        throw new PacketError('decrypt', 'cannot decrypt stream', { cause: e })
      }
      if (plain.length === 0) throw new PacketError('truncated', 'empty encrypted frame')
      this.switchTo(plain.subarray(1))
      type = plain[0]!
    } else if (encryptionEnabled(sec) && sec.verifyIncoming) {
      throw new PacketError('decrypt', 'Encryption is configured but remote state is not encrypted')
    }
    if (type === MsgType.compress) {
      const c = decodeCompress(await this.struct())
      const plain = decompressPayload(c.algo, c.buf)
      this.switchTo(plain.subarray(1))
      type = plain[0]!
    }
    return type
  }
}

/**
 * Writes one frame as memberlist's rawSendMsgStream does: compressed when
 * enabled (always, no size check), then encrypted with the stream label as
 * additional data. `withLabel` is for the dialer's first write only.
 */
export function encodeStreamFrame(frame: Buffer, opts: { compress: boolean; withLabel: boolean; label: string }, sec: WireSecurity): Buffer {
  let buf = opts.compress ? compressMessage(frame) : frame
  if (encryptionEnabled(sec) && sec.verifyOutgoing) {
    const plainLen = buf.length
    // The length goes into the additional data, so compute the sealed size first.
    const sealedLen = sec.encryptionVersion === 1 ? 1 + 12 + plainLen + 16 : 1 + 12 + plainLen + (16 - (plainLen % 16)) + 16
    const header = Buffer.allocUnsafe(5)
    header[0] = MsgType.encrypt
    header.writeUInt32BE(sealedLen, 1)
    const aad = Buffer.concat([header, Buffer.from(opts.label)])
    buf = Buffer.concat([header, encryptPayload(sec.encryptionVersion, sec.keyring!.view()[0]!, buf, aad)])
  }
  return opts.withLabel ? addLabel(buf, opts.label) : buf
}

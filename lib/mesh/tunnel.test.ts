import t, { type Test as Tap } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { Readable, type Duplex } from 'node:stream'
import { once } from 'node:events'
import { SealKeyring } from './seal.js'
import { FrameDecoder, FrameFlag, FrameType, encodeFrame, encodeOpenBody, type Frame } from './tunnel-frame.js'
import { Tunnel, TunnelError, type IncomingStream, type PeerAddress, type TunnelOptions } from './tunnel.js'
import { rawPeer } from '../../bench/tunnel-fuzz.js'
import { sleep, until } from './wait.test-helper.js'

// Ports 29100-29199 on 127.0.0.x, one port per test so parallel suites never meet.
const VNI = 4096
const SEALED_VNI = 4097
const MARKER = Buffer.from('PLAINTEXT-MARKER-7f3a9c')

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Every accepted stream echoes what it reads, half-close included. */
const echo = (s: IncomingStream): void => {
  const d = s.accept()
  d.on('error', () => {})
  d.pipe(d)
}

async function tunnel(t: Tap, host: string, port: number, extra: Partial<TunnelOptions> = {}): Promise<Tunnel> {
  const onStream = extra.onStream ?? echo
  // streams still open when a test ends fail with E_TUNNEL_CLOSED at teardown; that is expected
  const quiet = (s: IncomingStream): void =>
    onStream({
      ...s,
      accept: () => s.accept().on('error', () => {}),
    })
  const tn = await Tunnel.listen({ host, port, ...extra, onStream: quiet })
  t.teardown(() => tn.close())
  return tn
}

/** Writes `data` in random pieces, ends, and resolves with everything read back. */
async function roundTrip(d: Duplex, data: Buffer): Promise<Buffer> {
  const got: Buffer[] = []
  d.on('data', (c: Buffer) => got.push(c))
  const ended = once(d, 'end')
  let off = 0
  while (off < data.length) {
    const n = Math.min(data.length - off, 1 + Math.floor(Math.random() * 200_000))
    if (!d.write(data.subarray(off, off + n))) await once(d, 'drain')
    off += n
  }
  d.end()
  await ended
  return Buffer.concat(got)
}

/** A TCP proxy that records both directions and may rewrite frames on the way up (client → server). */
async function proxy(t: Tap, listen: PeerAddress, target: PeerAddress, rewrite?: (f: Frame) => Buffer[]) {
  const up: Buffer[] = []
  const down: Buffer[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((c) => {
    const s = connect(target)
    sockets.add(c).add(s)
    const dec = new FrameDecoder()
    c.on('data', (b: Buffer) => {
      up.push(Buffer.from(b))
      if (!rewrite) s.write(b)
      else dec.push(b, (f) => { for (const out of rewrite(f)) s.write(out) })
    })
    s.on('data', (b: Buffer) => {
      down.push(Buffer.from(b))
      c.write(b)
    })
    c.on('close', () => s.destroy())
    s.on('close', () => c.destroy())
    c.on('error', () => {})
    s.on('error', () => {})
  })
  server.listen(listen.port, listen.host)
  await once(server, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return {
    up,
    down,
    kill: () => {
      for (const s of sockets) s.destroy()
    },
  }
}

const rawFrame = (f: Frame): Buffer => Buffer.concat([f.header, f.body])

t.test('many concurrent streams of random sizes share one connection, intact', async (t) => {
  const a = await tunnel(t, '127.0.0.11', 29101)
  const b = await tunnel(t, '127.0.0.12', 29101)
  const sizes = Array.from({ length: 48 }, (_, i) => (i === 0 ? 0 : Math.floor(Math.random() * 1_500_000)))
  const results = await Promise.all(
    sizes.map(async (n) => {
      const data = randomBytes(n)
      const d = await a.open(b.advertise, VNI, 'task/tcp/80')
      return { sent: sha(data), echoed: sha(await roundTrip(d, data)) }
    }),
  )
  t.ok(results.every((r) => r.sent === r.echoed), 'every stream echoed its bytes exactly')
  t.equal(a.connectionCount(), 1)
  t.equal(b.connectionCount(), 1)
  const ca = a.counters()
  t.ok(ca.framesOut > 48 && ca.bytesOut > sizes.reduce((x, y) => x + y, 0))
  t.ok(Object.values(ca.dropped).every((n) => n === 0), 'nothing dropped')
  t.ok(Object.values(ca.refused).every((n) => n === 0), 'nothing refused')
  t.ok(await until(() => (a as unknown as { conns: Set<{ streams: Map<number, unknown> }> }).conns.values().next().value!.streams.size === 0), 'finished streams leave the table')
})

t.test('a slow reader holds the writer to the window (memory bounded), then gets every byte', async (t) => {
  const window = 256 * 1024
  let produced = 0
  const total = 16 * 1024 * 1024
  const producedHash = createHash('sha256')
  const b = await tunnel(t, '127.0.0.14', 29102, {
    onStream: (s) => {
      const d = s.accept()
      const src = new Readable({
        read() {
          if (produced >= total) return void this.push(null)
          const c = randomBytes(65536)
          produced += c.length
          producedHash.update(c)
          this.push(c)
        },
      })
      src.pipe(d)
    },
  })
  const a = await tunnel(t, '127.0.0.13', 29102, { window })
  const d = await a.open(b.advertise, VNI, 'task/tcp/80')
  d.on('error', () => {})
  d.pause()
  await sleep(400)
  t.ok(produced < 1024 * 1024, `the writer stalled after ${produced} of ${total} bytes`)
  t.ok(d.readableLength <= window, `the reader buffers ${d.readableLength} ≤ window`)
  const gotHash = createHash('sha256')
  let got = 0
  d.on('data', (c: Buffer) => {
    got += c.length
    gotHash.update(c)
  })
  d.resume()
  await once(d, 'end')
  t.equal(got, total)
  t.equal(gotHash.digest('hex'), producedHash.digest('hex'))
  d.end()
})

t.test('a slow task behind the acceptor stalls the opener too', async (t) => {
  let accepted: Duplex | undefined
  const b = await tunnel(t, '127.0.0.16', 29103, {
    onStream: (s) => {
      accepted = s.accept()
      accepted.pause()
    },
  })
  const a = await tunnel(t, '127.0.0.15', 29103)
  const d = await a.open(b.advertise, VNI, 'task/tcp/80')
  d.on('error', () => {})
  let written = 0
  const chunk = Buffer.alloc(65536, 1)
  while (d.write(chunk)) written += chunk.length
  written += chunk.length
  await sleep(300)
  t.equal(d.writableNeedDrain, true, 'the writer is told to wait')
  t.ok(accepted!.readableLength <= 256 * 1024, 'the acceptor buffers at most its window')
  let drained = false
  d.once('drain', () => (drained = true))
  accepted!.resume()
  t.ok(await until(() => drained), 'reading on the far side lets the writer go on')
  t.ok(written < 1024 * 1024)
  d.destroy()
})

t.test('half-close: each direction ends on its own', async (t) => {
  const b = await tunnel(t, '127.0.0.18', 29104, {
    onStream: (s) => {
      const d = s.accept()
      const got: Buffer[] = []
      d.on('data', (c: Buffer) => got.push(c))
      d.on('end', () => {
        // the opener finished writing; we may still answer
        setTimeout(() => d.end(Buffer.concat([Buffer.from('got:'), ...got])), 50)
      })
    },
  })
  const a = await tunnel(t, '127.0.0.17', 29104)
  const d = await a.open(b.advertise, VNI, 'task/tcp/80')
  const got: Buffer[] = []
  d.on('data', (c: Buffer) => got.push(c))
  const closed = once(d, 'close')
  d.end('hello')
  await once(d, 'end')
  t.equal(Buffer.concat(got).toString(), 'got:hello')
  await closed
  t.notOk(d.errored, 'a clean close')
})

t.test('a local destroy resets the remote stream', async (t) => {
  const remote = new Promise<Error>((resolve) => {
    void tunnel(t, '127.0.0.20', 29105, {
      onStream: (s) => {
        const d = s.accept()
        d.on('error', resolve)
        d.resume()
      },
    }).then(async (b) => {
      const a = await tunnel(t, '127.0.0.19', 29105)
      const d = await a.open(b.advertise, VNI, 'task/tcp/80')
      d.write('x')
      await sleep(20)
      d.destroy()
    })
  })
  const e = await remote
  t.ok(e instanceof TunnelError)
  t.equal((e as TunnelError).code, 'E_TUNNEL_RESET')
  t.equal((e as TunnelError).reason, 'ECANCELED')
})

t.test('peer death: killing the connection errors every stream promptly; resetPeer does it at once', async (t) => {
  const serverErrors: string[] = []
  const b = await tunnel(t, '127.0.0.22', 29106, {
    onStream: (s) => {
      const d = s.accept()
      d.on('error', (e: TunnelError) => serverErrors.push(e.code))
      d.resume()
    },
  })
  const a = await tunnel(t, '127.0.0.21', 29106)
  const px = await proxy(t, { host: '127.0.0.23', port: 29106 }, b.advertise)
  // Through the proxy, b is still named by its own address.
  const via = { host: '127.0.0.23', port: 29106, name: b.name }
  const streams = await Promise.all([0, 1, 2].map(() => a.open(via, VNI, 'task/tcp/80')))
  const errors = streams.map((d) => once(d, 'error').then(([e]) => (e as TunnelError).code))
  const start = Date.now()
  px.kill()
  t.same(await Promise.all(errors), ['E_TUNNEL_PEER_LOST', 'E_TUNNEL_PEER_LOST', 'E_TUNNEL_PEER_LOST'])
  t.ok(Date.now() - start < 500, 'within milliseconds')
  t.ok(await until(() => serverErrors.length === 3))
  t.ok(serverErrors.every((c) => c === 'E_TUNNEL_PEER_LOST'))

  // the next open dials again
  const again = await a.open(via, VNI, 'task/tcp/80')
  const err = once(again, 'error')
  a.resetPeer(via)
  t.equal(((await err)[0] as TunnelError).code, 'E_TUNNEL_PEER_LOST')
  t.equal(a.connectionCount(), 0)
})

t.test('OPEN_FAIL carries the remote reason; unreachable peers and unknown VNIs reject too', async (t) => {
  const b = await tunnel(t, '127.0.0.25', 29107, {
    network: (vni) => (vni === VNI ? {} : undefined),
    onStream: (s) => {
      // what the mesh does: dial the task, report its errno
      const c = connect({ host: '127.0.0.25', port: 29199 })
      c.on('connect', () => c.destroy())
      c.on('error', (e: NodeJS.ErrnoException) => s.reject(e.code ?? 'EIO'))
    },
  })
  const a = await tunnel(t, '127.0.0.24', 29107)
  const e1 = await a.open(b.advertise, VNI, 'task/tcp/80').catch((e: unknown) => e)
  t.ok(e1 instanceof TunnelError)
  t.same({ code: (e1 as TunnelError).code, reason: (e1 as TunnelError).reason }, { code: 'E_TUNNEL_OPEN_FAILED', reason: 'ECONNREFUSED' })
  const e2 = (await a.open(b.advertise, 5555, 'task/tcp/80').catch((e: unknown) => e)) as TunnelError
  t.same({ code: e2.code, reason: e2.reason }, { code: 'E_TUNNEL_OPEN_FAILED', reason: 'ENONET' })
  t.equal(b.counters().dropped.unknown_vni, 1)
  const e3 = (await a.open({ host: '127.0.0.26', port: 29107 }, VNI, 'task/tcp/80').catch((e: unknown) => e)) as TunnelError
  t.same({ code: e3.code, reason: e3.reason }, { code: 'E_TUNNEL_PEER_UNREACHABLE', reason: 'ECONNREFUSED' })
  const e4 = (await a.open(b.advertise, 0, 'task/tcp/80').catch((e: unknown) => e)) as TunnelError
  t.equal(e4.code, 'E_TUNNEL_UNKNOWN_VNI')
  t.equal(a.connectionCount(), 1, 'the failures did not hurt the connection')
})

t.test('an OPEN nobody answers times out and is reset', async (t) => {
  let pending: IncomingStream | undefined
  const b = await Tunnel.listen({ host: '127.0.0.28', port: 29108, onStream: (s) => (pending = s) })
  t.teardown(() => b.close())
  const a = await tunnel(t, '127.0.0.27', 29108, { openTimeoutMs: 150 })
  const e = (await a.open(b.advertise, VNI, 'task/tcp/80').catch((x: unknown) => x)) as TunnelError
  t.equal(e.code, 'E_TUNNEL_OPEN_TIMEOUT')
  await sleep(100) // the RST's way across
  let late: unknown
  try {
    pending!.accept()
  } catch (x) {
    late = x
  }
  t.equal((late as TunnelError).code, 'E_TUNNEL_RESET', 'a late accept() learns the opener gave up')
})

t.test('UDP datagrams through the tunnel and replies back on their flow, plain and sealed', async (t) => {
  const ring = () => new SealKeyring([{ id: 1, key: Buffer.alloc(32, 9) }], 1)
  const ringA = ring()
  const ringB = ring()
  const replies: [number, number, string][] = []
  const seen: string[] = []
  const b = await tunnel(t, '127.0.0.30', 29109, {
    network: (vni) => (vni === SEALED_VNI ? { seal: ringB } : vni === VNI ? {} : undefined),
    onDatagram: (d) => {
      seen.push(`${d.vni} ${d.endpointKey} ${d.flowId}`)
      d.reply(Buffer.concat([Buffer.from('echo:'), d.payload]))
    },
  })
  const a = await tunnel(t, '127.0.0.29', 29109, {
    network: (vni) => (vni === SEALED_VNI ? { seal: ringA } : vni === VNI ? {} : undefined),
  })
  const f1 = a.openFlow(b.advertise, VNI, 'dns/udp/53', (p) => replies.push([VNI, f1.id, p.toString()]))
  const f2 = a.openFlow(b.advertise, SEALED_VNI, 'dns/udp/53', (p) => replies.push([SEALED_VNI, f2.id, p.toString()]))
  f1.send(Buffer.from('q1'))
  f2.send(Buffer.from('q2'))
  t.ok(await until(() => replies.length === 2))
  t.same(replies.sort((x, y) => x[0] - y[0]), [
    [VNI, f1.id, 'echo:q1'],
    [SEALED_VNI, f2.id, 'echo:q2'],
  ])
  t.same(seen.sort(), [`${VNI} dns/udp/53 ${f1.id}`, `${SEALED_VNI} dns/udp/53 ${f2.id}`])
  t.throws(() => a.openFlow(b.advertise, 777, 'x/udp/1', () => {}), { code: 'E_TUNNEL_UNKNOWN_VNI' })
  t.throws(() => a.openFlow({ host: 'localhost', port: 29109 }, VNI, 'x/udp/1', () => {}), { code: 'E_TUNNEL_PROTOCOL' })
  t.throws(() => f1.send(Buffer.alloc(65_500)), { code: 'E_TUNNEL_TOO_LARGE' })

  // what a sealed datagram looks like on the wire, and what plaintext and replays for the sealed VNI get
  const raw = createSocket('udp4')
  t.teardown(() => raw.close())
  await new Promise<void>((r) => raw.bind(29109, '127.0.0.31', r))
  const captured = once(raw, 'message')
  a.openFlow({ host: '127.0.0.31', port: 29109 }, SEALED_VNI, 'dns/udp/53', () => {}).send(MARKER)
  const [wire] = (await captured) as [Buffer]
  t.equal(wire.indexOf(MARKER), -1, 'no plaintext on the wire')
  t.equal(wire[10]! & FrameFlag.SEALED, FrameFlag.SEALED)
  const send = (buf: Buffer) => new Promise<void>((r) => raw.send(buf, 29109, '127.0.0.30', () => r()))
  await send(wire)
  await send(wire)
  await send(encodeFrame({ vni: SEALED_VNI, type: FrameType.DGRAM, flags: 0, keyId: 0, streamId: 1 }, Buffer.from('\x00\x01xmarker')))
  await send(randomBytes(64))
  t.ok(await until(() => b.counters().dropped.replay === 1 && b.counters().dropped.plaintext === 1 && b.counters().dropped.malformed === 1))
  t.equal(seen.length, 3, 'the captured datagram was delivered once')
})

t.test('an encrypted VNI never shows plaintext on the wire, and refuses plaintext and replays', async (t) => {
  const key = randomBytes(32)
  const ringA = new SealKeyring([{ id: 1, key }], 1)
  const ringB = new SealKeyring([{ id: 1, key }], 1)
  const opened: string[] = []
  const b = await tunnel(t, '127.0.0.33', 29110, {
    network: (vni) => (vni === SEALED_VNI ? { seal: ringB } : {}),
    onStream: (s) => {
      opened.push(s.endpointKey)
      echo(s)
    },
  })
  const a = await tunnel(t, '127.0.0.32', 29110, { network: (vni) => (vni === SEALED_VNI ? { seal: ringA } : {}) })
  const via = { host: '127.0.0.34', port: 29110, name: b.name }
  const px = await proxy(t, via, b.advertise)
  const payload = Buffer.concat(Array.from({ length: 2000 }, () => MARKER))
  const d = await a.open(via, SEALED_VNI, 'secret-task/tcp/80', Buffer.from('PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n'))
  t.equal(sha(await roundTrip(d, payload)), sha(payload))
  const upWire = Buffer.concat(px.up)
  const downWire = Buffer.concat(px.down)
  t.ok(upWire.length > payload.length && downWire.length > payload.length, 'the data did cross the proxy')
  for (const needle of [MARKER, Buffer.from('secret-task'), Buffer.from('PROXY TCP4')]) {
    t.equal(upWire.indexOf(needle), -1, `no "${needle}" upstream`)
    t.equal(downWire.indexOf(needle), -1, `no "${needle}" downstream`)
  }
  const frames: Frame[] = []
  new FrameDecoder().push(upWire, (f) => frames.push(f))
  t.same(frames.slice(0, 2).map((f) => f.type), [FrameType.HELLO, FrameType.AUTH], 'the handshake first')
  t.ok(frames.slice(2).every((f) => f.vni === SEALED_VNI && (f.flags & FrameFlag.SEALED) !== 0), 'then every frame is sealed')

  // A raw connection (names are not checked here) replays the recorded OPEN, then tries a plaintext OPEN, for the sealed VNI.
  const open = frames.find((f) => f.type === FrameType.OPEN)!
  const raw = await rawPeer(b.advertise, { name: '127.0.0.99:4789' })
  t.teardown(() => raw.close())
  raw.socket.write(rawFrame(open))
  raw.socket.write(encodeFrame({ vni: SEALED_VNI, type: FrameType.OPEN, flags: 0, keyId: 0, streamId: 3 }, encodeOpenBody({ window: 65536, endpointKey: 'x/tcp/1', preamble: Buffer.alloc(0) })))
  t.ok(await until(() => b.counters().dropped.replay === 1 && b.counters().dropped.plaintext === 1))
  t.same(opened, ['secret-task/tcp/80'], 'neither reached onStream')
})

t.test('tampered and duplicated frames are dropped alone; the other streams on the connection carry on', async (t) => {
  const key = randomBytes(32)
  const b = await tunnel(t, '127.0.0.36', 29111, { network: () => ({ seal: new SealKeyring([{ id: 1, key }], 1) }) })
  const a = await tunnel(t, '127.0.0.35', 29111, { network: () => ({ seal: new SealKeyring([{ id: 1, key }], 1) }) })
  let tampered = 0
  const via = { host: '127.0.0.37', port: 29111, name: b.name }
  await proxy(t, via, b.advertise, (f) => {
    const wire = rawFrame(f)
    if (f.type !== FrameType.DATA) return [wire]
    if (f.streamId === 1 && tampered === 0) {
      tampered++
      const bad = Buffer.from(wire)
      bad[bad.length - 20]! ^= 0xff // ciphertext: the header stays intact
      return [bad]
    }
    return [wire, wire] // every other DATA frame twice: a replay
  })
  const victim = await a.open(via, VNI, 'task/tcp/80')
  victim.on('error', () => {})
  victim.write(Buffer.alloc(1000, 1))
  const others = await Promise.all(
    [1, 2, 3].map(async () => {
      const data = randomBytes(300_000)
      const d = await a.open(via, VNI, 'task/tcp/80')
      return sha(await roundTrip(d, data)) === sha(data)
    }),
  )
  t.same(others, [true, true, true], 'the other streams were intact despite the replays')
  const c = b.counters()
  t.equal(c.dropped.decrypt, 1, 'the tampered frame')
  t.ok(c.dropped.replay >= 15, `every duplicate (${c.dropped.replay})`)
  t.equal(a.connectionCount(), 1)
  victim.destroy()
})

t.test('garbage on a raw connection is counted and ends that connection only', async (t) => {
  const a = await tunnel(t, '127.0.0.38', 29112)
  const b = await tunnel(t, '127.0.0.39', 29112)
  const d = await a.open(b.advertise, VNI, 'task/tcp/80')
  for (const junk of [randomBytes(4096), Buffer.concat([encodeFrame({ vni: 0, type: FrameType.HELLO, flags: 0, keyId: 0, streamId: 0 }, Buffer.from('127.0.0.99:1')), randomBytes(512)])]) {
    const raw = connect(b.advertise)
    raw.on('error', () => {})
    raw.write(junk)
    await once(raw, 'close')
  }
  t.equal(b.counters().dropped.malformed, 2)
  const data = randomBytes(100_000)
  t.equal(sha(await roundTrip(d, data)), sha(data), 'the tunnel still serves its real peer')
})

t.test('simultaneous dials settle on one connection per pair', async (t) => {
  const a = await tunnel(t, '127.0.0.40', 29113)
  const b = await tunnel(t, '127.0.0.41', 29113)
  const [da, db] = await Promise.all([a.open(b.advertise, VNI, 'task/tcp/80'), b.open(a.advertise, VNI, 'task/tcp/80')])
  const [ea, eb] = await Promise.all([roundTrip(da, Buffer.from('from a')), roundTrip(db, Buffer.from('from b'))])
  t.same([ea.toString(), eb.toString()], ['from a', 'from b'])
  t.ok(await until(() => a.connectionCount() === 1 && b.connectionCount() === 1), `${a.connectionCount()} / ${b.connectionCount()}`)
  // both now use the survivor
  const [xa, xb] = await Promise.all([a.open(b.advertise, VNI, 'task/tcp/80'), b.open(a.advertise, VNI, 'task/tcp/80')])
  t.same([(await roundTrip(xa, Buffer.from('1'))).toString(), (await roundTrip(xb, Buffer.from('2'))).toString()], ['1', '2'])
  t.equal(a.connectionCount() + b.connectionCount(), 2)
})

t.test('keys rotate under a live stream', async (t) => {
  const k1 = randomBytes(32)
  const k2 = randomBytes(32)
  const ringA = new SealKeyring([{ id: 1, key: k1 }], 1)
  const ringB = new SealKeyring([{ id: 1, key: k1 }], 1)
  const b = await tunnel(t, '127.0.0.43', 29114, { network: () => ({ seal: ringB }) })
  const a = await tunnel(t, '127.0.0.42', 29114, { network: () => ({ seal: ringA }) })
  const d = await a.open(b.advertise, SEALED_VNI, 'task/tcp/80')
  const got: Buffer[] = []
  d.on('data', (c: Buffer) => got.push(c))
  d.write('before|')
  await until(() => Buffer.concat(got).length === 7)
  ringA.install(2, k2)
  ringB.install(2, k2)
  ringA.usePrimary(2)
  d.write('during|')
  await until(() => Buffer.concat(got).length === 14)
  ringB.usePrimary(2)
  ringA.remove(1)
  ringB.remove(1)
  d.end('after')
  await once(d, 'end')
  t.equal(Buffer.concat(got).toString(), 'before|during|after')
  t.equal(b.counters().dropped.decrypt + a.counters().dropped.decrypt, 0)
})

t.test('ping measures the round trip; close fails what is left', async (t) => {
  const a = await Tunnel.listen({ host: '127.0.0.44', port: 29115 })
  const b = await tunnel(t, '127.0.0.45', 29115)
  const rtt = await a.ping(b.advertise)
  t.ok(rtt >= 0 && rtt < 1000, `${rtt} ms`)
  const d = await a.open(b.advertise, VNI, 'task/tcp/80')
  const err = once(d, 'error')
  await a.close()
  t.equal(((await err)[0] as TunnelError).code, 'E_TUNNEL_CLOSED')
  t.equal(((await a.open(b.advertise, VNI, 'k/tcp/1').catch((e: unknown) => e)) as TunnelError).code, 'E_TUNNEL_CLOSED')
  await a.close()
})

t.test('issue 11.7: a reply is taken only from its flow\'s peer, under its random id', async (t) => {
  const b = await tunnel(t, '127.0.0.47', 29116, { onDatagram: (d) => d.reply(Buffer.concat([Buffer.from('echo:'), d.payload])) })
  const a = await tunnel(t, '127.0.0.46', 29116)
  const got: string[] = []
  const flows = Array.from({ length: 50 }, (_, i) => a.openFlow(b.advertise, VNI, `dns/udp/${i + 1}`, (p) => got.push(p.toString())))
  const ids = flows.map((f) => f.id).sort((x, y) => x - y)
  t.equal(new Set(ids).size, 50, 'ids are unique')
  t.notOk(ids.some((id, i) => i > 0 && id - ids[i - 1]! === 1), `ids are random, not counted (${ids.slice(0, 3).join(', ')} …)`)

  // Forged replies: every real flow id from b's host but another port, and ids 1..50 (a counter's) from anywhere.
  const forger = createSocket('udp4')
  t.teardown(() => forger.close())
  await new Promise<void>((r) => forger.bind(29117, '127.0.0.47', r))
  const forge = (id: number) => encodeFrame({ vni: VNI, type: FrameType.DGRAM, flags: FrameFlag.REPLY, keyId: 0, streamId: id }, Buffer.from('forged'))
  for (const id of [...ids, ...Array.from({ length: 50 }, (_, i) => i + 1)]) forger.send(forge(id), a.advertise.port, a.advertise.host)
  t.ok(await until(() => a.counters().dropped.reply_wrong_peer === 50 && a.counters().dropped.reply_unknown_flow === 50), JSON.stringify(a.counters().dropped))

  for (const f of flows) f.send(Buffer.from('q'))
  t.ok(await until(() => got.length === 50), `${got.length} replies`)
  t.ok(got.every((p) => p === 'echo:q'), 'only the real replies reached the flows')

  // A closed flow takes no more replies.
  flows[0]!.close()
  flows[0]!.send(Buffer.from('late'))
  t.ok(await until(() => a.counters().dropped.reply_unknown_flow === 51))
  t.equal(got.length, 50)
})

import { randomBytes } from 'node:crypto'
import { parsePeerKey } from './peer-address.js'
import { TunnelError } from './tunnel-error.js'
import { FrameError } from './tunnel-frame.js'

/**
 * How a tunnel proves which node it is, and checks that a peer is the node
 * it names. Both directions are proven on every connection, over a
 * transcript that binds both sides' fresh nonces, both names, the dialer's
 * address and the direction, so a proof is good for one connection and one
 * role only (no replay, no reflection).
 */
export interface TunnelAuth {
  /** This node's proof over `transcript`. May throw: the connection is then refused. */
  prove(transcript: Buffer): Buffer
  /** Whether `proof` shows that the peer is node `name`, over `transcript`. A throw counts as false. */
  verify(name: string, transcript: Buffer, proof: Buffer): boolean
}

/** Names are taken at their word: for tunnels among hosts that all trust each other (tests, a private network). */
export const TRUST_NAMES: TunnelAuth = { prove: () => Buffer.alloc(0), verify: () => true }

export const NONCE_BYTES = 32
export const MAX_NAME_BYTES = 256
/** Room for a certificate and a signature. */
export const MAX_PROOF_BYTES = 8192

/** HELLO, the dialer's first frame: who it is, where it listens, its nonce. */
export interface Hello {
  name: string
  /** The dialer's advertised address, `host:port`. */
  address: string
  nonce: Buffer
}

const DOMAIN = Buffer.from('swarmd tunnel handshake v1\n')
const ROLE = { dialer: Buffer.from('dialer\n'), acceptor: Buffer.from('acceptor\n') }

/** What each side signs: the role it speaks in, then every field both sides contributed, each length-prefixed. */
export function transcript(role: 'dialer' | 'acceptor', hello: Hello, acceptor: { name: string; nonce: Buffer }): Buffer {
  return Buffer.concat([DOMAIN, ROLE[role], fields([Buffer.from(hello.name), Buffer.from(hello.address), hello.nonce, Buffer.from(acceptor.name), acceptor.nonce])])
}

/** Each field as u16 length + bytes. */
function fields(fs: Buffer[]): Buffer {
  const out: Buffer[] = []
  for (const f of fs) {
    const len = Buffer.allocUnsafe(2)
    len.writeUInt16BE(f.length, 0)
    out.push(len, f)
  }
  return Buffer.concat(out)
}

function readFields(body: Buffer, n: number, what: string): Buffer[] {
  const out: Buffer[] = []
  let off = 0
  for (let i = 0; i < n; i++) {
    if (off + 2 > body.length) throw new FrameError('E_FRAME_BODY', `${what} is truncated`)
    const len = body.readUInt16BE(off)
    if (off + 2 + len > body.length) throw new FrameError('E_FRAME_BODY', `${what} is truncated`)
    out.push(body.subarray(off + 2, off + 2 + len))
    off += 2 + len
  }
  if (off !== body.length) throw new FrameError('E_FRAME_BODY', `${what} has trailing bytes`)
  return out
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function name(b: Buffer, what: string): string {
  if (b.length === 0 || b.length > MAX_NAME_BYTES) throw new FrameError('E_FRAME_BODY', `${what} of ${b.length} bytes`)
  try {
    return utf8.decode(b)
  } catch {
    throw new FrameError('E_FRAME_BODY', `${what} is not UTF-8`)
  }
}

function nonce(b: Buffer): Buffer {
  if (b.length !== NONCE_BYTES) throw new FrameError('E_FRAME_BODY', `a nonce of ${b.length} bytes`)
  return Buffer.from(b)
}

function proof(b: Buffer): Buffer {
  if (b.length > MAX_PROOF_BYTES) throw new FrameError('E_FRAME_BODY', `a proof of ${b.length} bytes`)
  return Buffer.from(b)
}

function prove(auth: TunnelAuth, t: Buffer): Buffer {
  let p: Buffer
  try {
    p = auth.prove(t)
  } catch (e) {
    throw new TunnelError('E_TUNNEL_AUTH', `cannot prove this node's name: ${(e as Error).message}`, undefined, { cause: e })
  }
  if (p.length > MAX_PROOF_BYTES) throw new TunnelError('E_TUNNEL_AUTH', `this node's proof of ${p.length} bytes exceeds ${MAX_PROOF_BYTES}`)
  return p
}

function check(auth: TunnelAuth, who: string, t: Buffer, p: Buffer): void {
  let ok: boolean
  try {
    ok = auth.verify(who, t, p)
  } catch {
    ok = false
  }
  if (!ok) throw new TunnelError('E_TUNNEL_AUTH', `the peer did not prove it is ${who}`)
}

/**
 * The dialer's side: HELLO out; the acceptor's CHALLENGE must prove it is
 * the node the dialer meant to reach; then AUTH out. Throws FrameError for a
 * malformed body, TunnelError E_TUNNEL_AUTH for a failed proof.
 */
export class DialerHandshake {
  private readonly hello: Hello

  constructor(
    private readonly auth: TunnelAuth,
    self: { name: string; address: string },
    /** The name the node at the dialled address must prove. */
    readonly expected: string,
  ) {
    this.hello = { ...self, nonce: randomBytes(NONCE_BYTES) }
  }

  helloBody(): Buffer {
    return fields([Buffer.from(this.hello.name), Buffer.from(this.hello.address), this.hello.nonce])
  }

  /** Checks the acceptor's CHALLENGE; returns the AUTH body. */
  onChallenge(body: Buffer): Buffer {
    const [n, c, p] = readFields(body, 3, 'CHALLENGE')
    const acceptor = { name: name(n!, 'the acceptor name'), nonce: nonce(c!) }
    if (acceptor.name !== this.expected) throw new TunnelError('E_TUNNEL_AUTH', `reached ${acceptor.name}, not ${this.expected}`)
    check(this.auth, acceptor.name, transcript('acceptor', this.hello, acceptor), proof(p!))
    return fields([prove(this.auth, transcript('dialer', this.hello, acceptor))])
  }
}

/**
 * The acceptor's side: a HELLO gets a CHALLENGE (this node's nonce and
 * proof); the AUTH that follows must prove the dialer is the node its HELLO
 * named. Throws as DialerHandshake does.
 */
export class AcceptorHandshake {
  private hello: Hello | undefined
  private readonly self: { name: string; nonce: Buffer }

  constructor(
    private readonly auth: TunnelAuth,
    selfName: string,
  ) {
    this.self = { name: selfName, nonce: randomBytes(NONCE_BYTES) }
  }

  get helloSeen(): boolean {
    return this.hello !== undefined
  }

  /** Returns the CHALLENGE body. */
  onHello(body: Buffer): Buffer {
    const [n, a, c] = readFields(body, 3, 'HELLO')
    const address = name(a!, 'the dialer address')
    if (!parsePeerKey(address)) throw new FrameError('E_FRAME_BODY', `HELLO address ${JSON.stringify(address.slice(0, 64))} is not host:port`)
    const hello: Hello = { name: name(n!, 'the dialer name'), address, nonce: nonce(c!) }
    const p = prove(this.auth, transcript('acceptor', hello, this.self))
    this.hello = hello
    return fields([Buffer.from(this.self.name), this.self.nonce, p])
  }

  /** Checks the dialer's AUTH; returns its proven HELLO. */
  onAuth(body: Buffer): Hello {
    const hello = this.hello
    if (!hello) throw new TunnelError('E_TUNNEL_AUTH', 'AUTH before HELLO')
    const [p] = readFields(body, 1, 'AUTH')
    check(this.auth, hello.name, transcript('dialer', hello, this.self), proof(p!))
    return hello
  }
}

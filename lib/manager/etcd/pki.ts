import 'reflect-metadata'
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const ALG = { name: 'Ed25519' }
/** Every member certificate names this host too, so the client can check the server by a name rather than an IP (gRPC sets the TLS server name). */
export const ETCD_SERVER_NAME = 'swarmd-etcd'

/** A member's TLS material: its certificate and key, PEM. */
export interface MemberTls {
  cert: string
  key: string
}

const pemKey = (pkcs8: ArrayBuffer): string => `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`
const serial = (): string => randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')

/**
 * The managers' etcd CA: an x509 CA (Ed25519) that only managers hold, for
 * the TLS of etcd's peer and client ports. It is not the swarm's node CA,
 * which also certifies workers: etcd's --client-cert-auth checks only the
 * chain, so trusting the node CA there would let any worker read the state.
 */
export class EtcdCA {
  private constructor(
    readonly certPem: string,
    private readonly keys: webcrypto.CryptoKeyPair,
  ) {}

  static async create(clusterId: string): Promise<EtcdCA> {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
    const now = Date.now()
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=swarmd etcd CA, O=${clusterId}`,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + 20 * 365 * 86_400_000),
      keys,
      signingAlgorithm: ALG,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    })
    return new EtcdCA(cert.toString('pem'), keys)
  }

  /** From what `export()` gave (the CA's certificate and key, PEM). */
  static async load(certPem: string, keyPem: string): Promise<EtcdCA> {
    const cert = new x509.X509Certificate(certPem)
    const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' })
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALG, true, ['sign'])
    const publicKey = await cert.publicKey.export(ALG, ['verify'])
    return new EtcdCA(certPem, { privateKey, publicKey } as webcrypto.CryptoKeyPair)
  }

  async exportKey(): Promise<string> {
    return pemKey(await webcrypto.subtle.exportKey('pkcs8', this.keys.privateKey))
  }

  /**
   * A member's certificate, for both of etcd's ports and for its clients:
   * CN is the manager's node ID, OU says it is a manager, the SANs carry its
   * address and the shared server name.
   */
  async issue(o: { nodeId: string; ip: string; ttlMs: number }): Promise<MemberTls> {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
    const now = Date.now()
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${o.nodeId}, OU=swarm-manager`,
      issuer: new x509.X509Certificate(this.certPem).subject,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + o.ttlMs),
      signingKey: this.keys.privateKey,
      publicKey: keys.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'ip', value: o.ip },
          { type: 'dns', value: ETCD_SERVER_NAME },
        ]),
      ],
    })
    return { cert: cert.toString('pem'), key: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) }
  }
}

import { noop } from 'cockatiel'
import { Etcd3 } from 'etcd3'
import { ETCD_SERVER_NAME } from './pki.js'

/**
 * A client of this manager's own etcd member, over mutual TLS with the
 * managers' etcd CA. It talks to the local member only (a manager cut off
 * from the others then fails its writes, as it should), and it never
 * retries: etcd3's default policy repeats a write that timed out, which
 * applied plain puts twice while members were killed (reference/ha.md
 * §3.8). Every write is a compare-and-set transaction instead, and an
 * indeterminate one is checked by reading back.
 */
export function etcdClient(o: { url: string; tls: { ca: string; cert: string; key: string } }): Etcd3 {
  return new Etcd3({
    hosts: [o.url],
    credentials: { rootCertificate: Buffer.from(o.tls.ca), certChain: Buffer.from(o.tls.cert), privateKey: Buffer.from(o.tls.key) },
    grpcOptions: {
      // The member's certificate names the shared server name; gRPC would otherwise use the IP as TLS server name.
      'grpc.ssl_target_name_override': ETCD_SERVER_NAME,
      'grpc.default_authority': ETCD_SERVER_NAME,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
    },
    faultHandling: { global: noop, host: () => noop },
  })
}

import type { Test } from 'tap'
import { Membership } from '../gossip/membership.js'
import { Mesh, type MeshOptions } from './mesh.js'

/**
 * Two nodes on loopback for a test: memberships `name-a` and `name-b` on
 * hosts[0] and hosts[1] at `gossipPort`, joined, and a Mesh on each with the
 * ingress network (VNI 4096) and no drain delay; the teardown closes all
 * (closing one side earlier, to see it go, is allowed).
 */
export async function meshPair(
  t: Test,
  o: { name: string; hosts: [string, string]; gossipPort: number; tunnelPort: number; a?: Partial<MeshOptions>; b?: Partial<MeshOptions> },
): Promise<{ a: Mesh; b: Mesh; ma: Membership; mb: Membership }> {
  const [ha, hb] = o.hosts
  const ma = await Membership.create({ name: `${o.name}-a`, bind: { ip: ha, port: o.gossipPort }, profile: 'local' })
  const mb = await Membership.create({ name: `${o.name}-b`, bind: { ip: hb, port: o.gossipPort }, profile: 'local' })
  await mb.join([`${ha}:${o.gossipPort}`])
  const net = { id: 'ingress', vni: 4096 }
  const a = await Mesh.create({ membership: ma, host: ha, port: o.tunnelPort, networks: [net], drainMs: 0, ...o.a })
  const b = await Mesh.create({ membership: mb, host: hb, port: o.tunnelPort, networks: [net], drainMs: 0, ...o.b })
  t.teardown(async () => {
    await a.close()
    await b.close()
    await ma.shutdown()
    await mb.shutdown()
  })
  return { a, b, ma, mb }
}

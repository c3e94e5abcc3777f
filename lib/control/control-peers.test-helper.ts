import type { Test } from 'tap'
import { freePort } from '../test-helpers.test-helper.js'
import { ClusterCA } from './ca.js'
import { ControlNode } from './control-node.js'
import { generateKeyPair } from './identity.js'

/** A CA, a manager listening on `host` and a worker that dials it, with their keys; both nodes stopped at teardown. */
export async function controlPeers(t: Test, host: string) {
  const ca = ClusterCA.create()
  const mgrKeys = generateKeyPair()
  const wrkKeys = generateKeyPair()
  const port = await freePort(host)
  const manager = await ControlNode.create({ privateKey: mgrKeys.privateKey, listen: { ip: host, port } })
  const worker = await ControlNode.create({ privateKey: wrkKeys.privateKey })
  t.teardown(async () => {
    await worker.stop()
    await manager.stop()
  })
  return { ca, mgrKeys, wrkKeys, port, to: { ip: host, port }, manager, worker }
}

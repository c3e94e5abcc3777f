import { DataObjects } from './data-objects.js'
import type { StateStore } from './state-store.js'
import type { Config } from '../types/config.js'

/** Kept as they are (base64): a config is no secret, and Docker shows its data. */
const PLAIN = { seal: (d: Buffer): string => d.toString('base64'), open: (s: string): Buffer => Buffer.from(s, 'base64') }

/** Configs (swarmkit's): as secrets in every rule, but stored in the clear and shown with their data. */
export class Configs extends DataObjects<Config> {
  constructor(store: StateStore) {
    super(
      store,
      {
        kind: 'config',
        table: 'configs',
        field: 'data',
        notFound: 'E_CONFIG_NOT_FOUND',
        refs: c => (c.Configs ?? []).map(r => r.ConfigID),
        view: r => {
          const c = r.config as Omit<Config, 'Spec'> & { Spec: Omit<Config['Spec'], 'Data'> }
          return { ...c, Spec: { ...c.Spec, Data: r.data as string } }
        },
      },
      () => PLAIN,
    )
  }
}

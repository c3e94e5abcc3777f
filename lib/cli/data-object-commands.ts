import type { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import { collect, kvMap } from './service-flags.js'
import { eachRef, errText, filtersQuery, out } from './service-commands.js'

/** What `secret` and `config` differ in; the commands are otherwise docker's same four. */
export interface DataObjectCli<T extends { ID: string }> {
  kind: 'secret' | 'config'
  /** The create command's description and its file argument (optional for secrets, as docker's). */
  create: { description: string; file: '[file|-]' | '<file|->' }
  read(file: string | undefined, stdin: NodeJS.ReadableStream): Promise<Buffer>
  format(list: T[], o: { now: number; quiet?: boolean; format?: string }): string
  pretty(o: T): string
}

/** docker's `secret|config create / ls / inspect / rm` over /secrets or /configs. */
export function addDataObjectCommands<T extends { ID: string }>(program: Command, client: () => ApiClient, k: DataObjectCli<T>): void {
  const base = `/${k.kind}s`
  const cmd = program.command(k.kind).description(`Manage swarm ${k.kind}s`).exitOverride()

  cmd
    .command('create')
    .description(k.create.description)
    .argument(`<${k.kind}>`)
    .argument(k.create.file)
    .option('-l, --label <list>', `${k.kind === 'secret' ? 'Secret' : 'Config'} labels`, collect)
    .action(async (name: string, file: string | undefined, o: { label?: string[] }) => {
      const data = await k.read(file, process.stdin)
      const r = await client().call<{ ID: string }>('POST', `${base}/create`, { Name: name, Labels: kvMap(o.label), Data: data.toString('base64') })
      out(r.ID + '\n')
    })

  cmd
    .command('ls')
    .alias('list')
    .description(`List ${k.kind}s`)
    .option('-q, --quiet', 'Only display IDs')
    .option('--format <string>', 'Format output using a custom template')
    .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect)
    .action(async (o: { quiet?: boolean; format?: string; filter?: string[] }) => {
      const filters: Record<string, string[]> = {}
      for (const kv of o.filter ?? []) {
        const i = kv.indexOf('=')
        if (i <= 0) throw new SwarmdError('E_USAGE', 'bad format of filter (expected name=value)')
        ;(filters[kv.slice(0, i)] ??= []).push(kv.slice(i + 1))
      }
      const q = filtersQuery(filters)
      const list = await client().call<T[]>('GET', `${base}${q ? '?' + q : ''}`)
      out(k.format(list, { now: Date.now(), ...o }))
    })

  cmd
    .command('inspect')
    .description(`Display detailed information on one or more ${k.kind}s`)
    .argument(`<${k.kind}...>`)
    .option('--pretty', 'Print the information in a human friendly format')
    .action(async (refs: string[], o: { pretty?: boolean }) => {
      const c = client()
      const found: T[] = []
      const errs: string[] = []
      for (const ref of refs) {
        try {
          found.push(await c.call<T>('GET', `${base}/${encodeURIComponent(ref)}`))
        } catch (e) {
          if (!(e instanceof SwarmdError)) throw e
          errs.push(errText(e))
        }
      }
      out(o.pretty ? found.map(k.pretty).join('') : JSON.stringify(found, null, 4) + '\n')
      if (errs.length) throw new SwarmdError('E_NOT_FOUND', errs.join('\n'))
    })

  cmd
    .command('rm')
    .alias('remove')
    .description(`Remove one or more ${k.kind}s`)
    .argument(`<${k.kind}...>`)
    .action(async (refs: string[]) => {
      const c = client()
      await eachRef(refs, async ref => {
        await c.call('DELETE', `${base}/${encodeURIComponent(ref)}`)
        out(ref + '\n')
      })
    })
}

import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import type { Secret } from '../types/secret.js'
import { collect, kvMap } from './service-flags.js'
import { formatSecrets, prettySecret } from './service-format.js'
import { eachRef, errText, filtersQuery, out } from './service-commands.js'

/** docker's limit on what it reads for a secret: twice the 500 KiB the manager accepts, so the manager says no. */
const MAX_READ = 2 * 500 * 1024

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    n += chunk.length
    if (n >= MAX_READ) break
  }
  return Buffer.concat(chunks).subarray(0, MAX_READ)
}

/** docker's readSecretData: a file, or stdin for `-`, never empty. */
export async function readSecretData(file: string | undefined, stdin: NodeJS.ReadableStream): Promise<Buffer> {
  if (!file) throw new SwarmdError('E_USAGE', 'secret file is required')
  const where = file === '-' ? 'STDIN' : file
  let data: Buffer
  try {
    data = file === '-' ? await readAll(stdin) : (await readFile(file)).subarray(0, MAX_READ)
  } catch (e) {
    throw new SwarmdError('E_USAGE', `error reading from ${where}: ${(e as Error).message}`, { cause: e })
  }
  if (data.length === 0) throw new SwarmdError('E_USAGE', `error reading from ${where}: data is empty`)
  return data
}

/** swarmctl secret: docker's secret commands. The daemon never returns a secret's value. */
export function addSecretCommands(program: Command, client: () => ApiClient): void {
  const secret = program.command('secret').description('Manage swarm secrets').exitOverride()

  secret
    .command('create')
    .description('Create a secret from a file or STDIN as content')
    .argument('<secret>')
    .argument('[file|-]')
    .option('-l, --label <list>', 'Secret labels', collect)
    .action(async (name: string, file: string | undefined, o: { label?: string[] }) => {
      const data = await readSecretData(file, process.stdin)
      const r = await client().call<{ ID: string }>('POST', '/secrets/create', { Name: name, Labels: kvMap(o.label), Data: data.toString('base64') })
      out(r.ID + '\n')
    })

  secret
    .command('ls')
    .alias('list')
    .description('List secrets')
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
      const secrets = await client().call<Secret[]>('GET', `/secrets${q ? '?' + q : ''}`)
      out(formatSecrets(secrets, { now: Date.now(), ...o }))
    })

  secret
    .command('inspect')
    .description('Display detailed information on one or more secrets')
    .argument('<secret...>')
    .option('--pretty', 'Print the information in a human friendly format')
    .action(async (refs: string[], o: { pretty?: boolean }) => {
      const c = client()
      const found: Secret[] = []
      const errs: string[] = []
      for (const ref of refs) {
        try {
          found.push(await c.call<Secret>('GET', `/secrets/${encodeURIComponent(ref)}`))
        } catch (e) {
          if (!(e instanceof SwarmdError)) throw e
          errs.push(errText(e))
        }
      }
      out(o.pretty ? found.map(prettySecret).join('') : JSON.stringify(found, null, 4) + '\n')
      if (errs.length) throw new SwarmdError('E_NOT_FOUND', errs.join('\n'))
    })

  secret
    .command('rm')
    .alias('remove')
    .description('Remove one or more secrets')
    .argument('<secret...>')
    .action(async (refs: string[]) => {
      const c = client()
      await eachRef(refs, async ref => {
        await c.call('DELETE', `/secrets/${encodeURIComponent(ref)}`)
        out(ref + '\n')
      })
    })
}

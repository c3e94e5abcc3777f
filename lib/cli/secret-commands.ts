import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import { SwarmdError } from '../types/errors.js'
import type { Secret } from '../types/secret.js'
import { addDataObjectCommands } from './data-object-commands.js'
import { formatSecrets, prettySecret } from './service-format.js'

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
  addDataObjectCommands<Secret>(program, client, {
    kind: 'secret',
    create: { description: 'Create a secret from a file or STDIN as content', file: '[file|-]' },
    read: readSecretData,
    format: formatSecrets,
    pretty: prettySecret,
  })
}

import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { ApiClient } from '../api/client.js'
import type { Config } from '../types/config.js'
import { SwarmdError } from '../types/errors.js'
import { addDataObjectCommands } from './data-object-commands.js'
import { CONFIG_FORMAT, formatSecrets, prettyConfig } from './service-format.js'

/** docker's config create: the whole file, or stdin for `-` (the daemon judges the size). */
export async function readConfigData(file: string | undefined, stdin: NodeJS.ReadableStream): Promise<Buffer> {
  try {
    if (file !== '-') return await readFile(file ?? '')
    const chunks: Buffer[] = []
    for await (const chunk of stdin as AsyncIterable<Buffer>) chunks.push(chunk)
    return Buffer.concat(chunks)
  } catch (e) {
    throw new SwarmdError('E_USAGE', `Error reading content from ${JSON.stringify(file)}: ${(e as Error).message}`, { cause: e })
  }
}

/** swarmctl config: docker's config commands; a config's data is shown by inspect. */
export function addConfigCommands(program: Command, client: () => ApiClient): void {
  addDataObjectCommands<Config>(program, client, {
    kind: 'config',
    create: { description: 'Create a config from a file or STDIN', file: '<file|->' },
    read: readConfigData,
    format: (list, o) => formatSecrets(list, o, CONFIG_FORMAT),
    pretty: prettyConfig,
  })
}

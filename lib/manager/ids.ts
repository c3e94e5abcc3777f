import { randomBytes } from 'node:crypto'
import { base36 } from '../control/identity.js'

/** An object ID as swarm makes them: 25 base36 characters from 128 random bits. */
export const newId = (): string => base36(randomBytes(16), 25)

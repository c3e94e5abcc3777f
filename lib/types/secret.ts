import type { Version } from './service.js'

/** A secret's metadata as the Docker Engine API shapes it (its data never leaves the manager but sealed). */
export interface Secret {
  ID: string
  Version: Version
  CreatedAt: string
  UpdatedAt: string
  Spec: { Name: string; Labels?: Record<string, string> }
}

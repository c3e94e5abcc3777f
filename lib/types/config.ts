import type { Version } from './service.js'

/** A config as the Docker Engine API shapes it: unlike a secret's, its data is shown (base64). */
export interface Config {
  ID: string
  Version: Version
  CreatedAt: string
  UpdatedAt: string
  Spec: { Name: string; Labels?: Record<string, string>; Data: string }
}

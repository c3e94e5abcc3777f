import { ApiError } from './api-error.js'

/** `?version=N`: the object's Version.Index the update is based on. */
export function versionParam(q: URLSearchParams): number {
  const v = Number(q.get('version'))
  if (!q.has('version') || !Number.isInteger(v) || v < 0) throw new ApiError(400, 'invalid or missing version parameter: it must be the object\'s current Version.Index')
  return v
}

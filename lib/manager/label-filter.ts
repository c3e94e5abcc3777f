/**
 * swarmkit's filterMatchLabels over dockerd's `label` filter values
 * (ConvertKVStringsToMap): each `key` must be among the labels, each
 * `key=value` with that value; no filter lets everything through.
 */
export function matchLabels(filter: string[], labels: Record<string, string>): boolean {
  for (const f of filter) {
    const i = f.indexOf('=')
    const key = i < 0 ? f : f.slice(0, i)
    const value = i < 0 ? '' : f.slice(i + 1)
    if (!Object.hasOwn(labels, key)) return false
    if (value !== '' && labels[key] !== value) return false
  }
  return true
}

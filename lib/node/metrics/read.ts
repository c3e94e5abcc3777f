import { Counter, Gauge, type Registry } from 'prom-client'

export type Labels = Record<string, string>

/**
 * A family's samples, read when scraped from the counters the layers keep:
 * one value, values by label set, or undefined while the part they live on
 * is absent (the family then shows no sample, or 0 without labels).
 */
export type Read = () => number | Iterable<readonly [Labels, number]> | undefined

export interface Family {
  name: string
  help: string
  labelNames?: string[]
}

function samples(v: ReturnType<Read>): Iterable<readonly [Labels, number]> {
  if (v === undefined) return []
  return typeof v === 'number' ? [[{}, v]] : v
}

const config = (registry: Registry, f: Family) => ({ name: f.name, help: f.help, labelNames: f.labelNames ?? [], registers: [registry] })

/** A counter whose values are read at scrape time from a plain total that only grows (a reset shows as a new process would). */
export function counterFrom(registry: Registry, f: Family, read: Read): void {
  new Counter({ ...config(registry, f), collect() { this.reset(); for (const [labels, v] of samples(read())) this.inc(labels, v) } })
}

/** A gauge whose values are read at scrape time. */
export function gaugeFrom(registry: Registry, f: Family, read: Read): void {
  new Gauge({ ...config(registry, f), collect() { this.reset(); for (const [labels, v] of samples(read())) this.set(labels, v) } })
}

/** A record of counts as samples labelled by its keys. */
export function byLabel(label: string, counts: Record<string, number> | undefined): [Labels, number][] | undefined {
  return counts && Object.entries(counts).map(([k, v]) => [{ [label]: k }, v])
}

/** Both directions of a sent/received pair, labelled `direction`. */
export function sentReceived(sent: number, received: number): [Labels, number][] {
  return [
    [{ direction: 'sent' }, sent],
    [{ direction: 'received' }, received],
  ]
}

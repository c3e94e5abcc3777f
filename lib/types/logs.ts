/** A task's output, as executors read it and the manager relays it to `service logs`. */
export interface LogLine {
  /** RFC 3339 with nanoseconds, as Docker's timestamps. */
  time: string
  stream: 'stdout' | 'stderr'
  /** One line, without its newline. */
  text: string
}

export interface LogOptions {
  /** Only the last N lines (all when undefined). */
  tail?: number
  /** Only lines at or after this time (ms since the epoch). */
  since?: number
  follow?: boolean
}

/**
 * Docker's tables: Go text/tabwriter with minimum width 10, padding 3 and
 * spaces (docker/cli formatter.go), so swarmctl's output lines up as docker's.
 */
export function table(rows: string[][]): string {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)))
  return (
    rows
      .map(r =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(Math.max(10, widths[i]! + 3))))
          .join(''),
      )
      .join('\n') + '\n'
  )
}

/** PrettyPrint: `ready` → `Ready`. */
export const pretty = (s: string): string => (s ? s[0]!.toUpperCase() + s.slice(1).toLowerCase() : s)

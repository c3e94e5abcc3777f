/** A dependency-free SVG line chart for benchmark results in the README. */
export interface Series {
  label: string
  points: [number, number][]
  dashed?: boolean
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22']

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')

export function lineChart(o: { title: string; xLabel: string; yLabel: string; series: Series[]; xMax?: number; yMax?: number }): string {
  const W = 900
  const H = 520
  const L = 70
  const R = 260
  const T = 40
  const B = 60
  const xMax = o.xMax ?? Math.max(...o.series.flatMap(s => s.points.map(p => p[0])))
  const yMax = o.yMax ?? 1
  const x = (v: number): number => L + (Math.min(v, xMax) / xMax) * (W - L - R)
  const y = (v: number): number => H - B - (v / yMax) * (H - T - B)
  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`)
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  parts.push(`<text x="${L}" y="22" font-size="15">${esc(o.title)}</text>`)
  for (let i = 0; i <= 10; i++) {
    const xv = (xMax * i) / 10
    const yv = (yMax * i) / 10
    parts.push(`<line x1="${x(xv)}" y1="${T}" x2="${x(xv)}" y2="${H - B}" stroke="#eee"/><text x="${x(xv)}" y="${H - B + 16}" text-anchor="middle">${+xv.toFixed(2)}</text>`)
    parts.push(`<line x1="${L}" y1="${y(yv)}" x2="${W - R}" y2="${y(yv)}" stroke="#eee"/><text x="${L - 6}" y="${y(yv) + 4}" text-anchor="end">${+yv.toFixed(2)}</text>`)
  }
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`)
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle">${esc(o.xLabel)}</text>`)
  parts.push(`<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`)
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const pts = s.points.filter(p => p[0] <= xMax).map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`)
    const ly = T + 10 + i * 18
    parts.push(`<line x1="${W - R + 12}" y1="${ly}" x2="${W - R + 40}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="${W - R + 46}" y="${ly + 4}">${esc(s.label)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

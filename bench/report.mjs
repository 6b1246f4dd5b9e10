/** Markdown tables for the console and BENCHMARKS.md. */

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

export const fmt = {
  int: (v) => (isNum(v) ? Math.round(v).toLocaleString('en-US') : '—'),
  n: (v, digits = 2) => (isNum(v) ? v.toFixed(digits) : '—'),
  us: (ms) => (isNum(ms) ? (ms * 1000).toFixed(1) : '—'),
  ms: (ms) => (isNum(ms) ? ms.toFixed(3) : '—'),
  pct: (v) => (isNum(v) ? v.toFixed(1) : '—'),
  kb: (bytes) => (isNum(bytes) ? (bytes / 1024).toFixed(2) : '—'),
};

/** `value / raw` as "1.23×", or — when there is no floor to compare with. */
export function ratio(value, raw) {
  if (!isNum(value) || !isNum(raw) || raw === 0) return '—';
  return `${(value / raw).toFixed(2)}×`;
}

export function table(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((cell) => String(cell)));
  const widths = headers.map((_, c) => Math.max(3, ...cells.map((row) => row[c].length)));
  const line = (row) => `| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join('\n');
}

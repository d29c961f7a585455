/**
 * Run intervals of backups and their text timeline: one row per VM and kind, one character per time
 * bucket. Also counts guest/hypervisor overlaps, the invariant the demo shows.
 */

export interface Interval {
  kind: 'GUEST' | 'HYPERVISOR';
  vm: string;
  start: number;
  end: number;
}

/** Pairs of a GUEST and a HYPERVISOR interval (all on one host) that overlap in time. */
export function countOverlaps(intervals: readonly Interval[]): number {
  const guests = intervals.filter((i) => i.kind === 'GUEST');
  const hypervisors = intervals.filter((i) => i.kind === 'HYPERVISOR');
  let n = 0;
  for (const g of guests) for (const h of hypervisors) if (g.start < h.end && h.start < g.end) n++;
  return n;
}

const MARK = { GUEST: '=', HYPERVISOR: '#' };

export function renderTimeline(intervals: readonly Interval[], width: number): string {
  if (intervals.length === 0) return '  (no backups ran)\n';
  const t0 = Math.min(...intervals.map((i) => i.start));
  const t1 = Math.max(...intervals.map((i) => i.end));
  const bucket = Math.max(1, (t1 - t0) / width);
  const rows = new Map<string, string[]>();
  for (const i of [...intervals].sort((a, b) => a.kind.localeCompare(b.kind) || a.vm.localeCompare(b.vm))) {
    const key = `${i.vm} ${i.kind}`;
    const row = rows.get(key) ?? Array<string>(width).fill('.');
    const from = Math.floor((i.start - t0) / bucket);
    const to = Math.max(from + 1, Math.ceil((i.end - t0) / bucket));
    for (let c = from; c < Math.min(to, width); c++) row[c] = MARK[i.kind];
    rows.set(key, row);
  }
  const label = Math.max(...[...rows.keys()].map((k) => k.length));
  const lines = [...rows].map(([k, row]) => `  ${k.padEnd(label)} |${row.join('')}|`);
  const seconds = Math.round((t1 - t0) / 1000);
  lines.push(`  ${''.padEnd(label)}  0s${`${seconds}s`.padStart(width - 2)}`);
  lines.push(
    `  ${''.padEnd(label)}  = guest backup running   # hypervisor backup running   (1 column ≈ ${(bucket / 1000).toFixed(1)} s)`,
  );
  return `${lines.join('\n')}\n`;
}

/**
 * The tables `npm run bench:penalty` prints for its host run and its in-guest run: each phase's foreground
 * figures against the no-backup baseline (p99 inflation, working-set hit rate in points) and the backup's
 * duration against the unthrottled one; then the targets and the frontier (Headroom's adaptive budget
 * against every fixed budget that ends the backup no later). Pure: figures in, text out.
 */
import type { PhaseResult } from './penalty-measure';

export type PhaseKind = 'baseline' | 'unthrottled' | 'fixed' | 'headroom';
export type Phase = PhaseResult & { kind: PhaseKind };

/** The targets for the run under Headroom. */
export const TARGETS = Object.freeze({
  httpP99Inflation: 1.25,
  diskP99Inflation: 1.5,
  hitRatePoints: 5,
  backupVsUnthrottled: 4,
});

const f = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
const ratio = (v: number, b: number) => (Number.isFinite(v) && b > 0 ? v / b : NaN);
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '-');

/** What one phase costs against the baseline. */
export function inflation(p: Phase, base: Phase, unthrottled: Phase | undefined) {
  return {
    http: ratio(p.http.p99, base.http.p99),
    disk: ratio(p.disk.p99, base.disk.p99),
    hitPoints: p.worksetHitPercent - base.worksetHitPercent,
    backup:
      p.backupSeconds !== undefined && unthrottled?.backupSeconds ? p.backupSeconds / unthrottled.backupSeconds : NaN,
  };
}

function table(phases: readonly Phase[]): string[] {
  const base = phases.find((p) => p.kind === 'baseline')!;
  const unthrottled = phases.find((p) => p.kind === 'unthrottled');
  const header = [
    'phase',
    'HTTP p50 / p99 ms',
    'p99 vs base',
    'disk p50 / p99 ms',
    'p99 vs base',
    'working-set hits',
    'vs base',
    'backup took',
    'vs unthrottled',
    'machine busy',
  ];
  const rows = phases.map((p) => {
    const i = inflation(p, base, unthrottled);
    return [
      p.name,
      `${f(p.http.p50)} / ${f(p.http.p99)}`,
      x(i.http),
      `${f(p.disk.p50)} / ${f(p.disk.p99)}`,
      x(i.disk),
      Number.isFinite(p.worksetHitPercent) ? `${p.worksetHitPercent.toFixed(1)}%` : '-',
      Number.isFinite(i.hitPoints) ? `${i.hitPoints >= 0 ? '+' : ''}${i.hitPoints.toFixed(1)} pt` : '-',
      p.backupSeconds === undefined ? '-' : `${p.backupSeconds.toFixed(1)} s`,
      x(i.backup),
      `${p.machineBusyPercent.toFixed(0)}%`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/** The targets, each met or not, for the Headroom phase. */
function targets(phases: readonly Phase[]): string[] {
  const base = phases.find((p) => p.kind === 'baseline')!;
  const unthrottled = phases.find((p) => p.kind === 'unthrottled');
  const headroom = phases.find((p) => p.kind === 'headroom');
  if (!headroom) return [];
  const i = inflation(headroom, base, unthrottled);
  const check = (what: string, value: string, ok: boolean) => `target: ${what}: ${value} -> ${ok ? 'met' : 'MISSED'}`;
  return [
    check(`HTTP p99 <= ${TARGETS.httpP99Inflation}x base`, x(i.http), i.http <= TARGETS.httpP99Inflation),
    check(`disk-probe p99 <= ${TARGETS.diskP99Inflation}x base`, x(i.disk), i.disk <= TARGETS.diskP99Inflation),
    check(
      `working-set hit rate within ${TARGETS.hitRatePoints} points of base`,
      `${i.hitPoints.toFixed(1)} pt`,
      i.hitPoints >= -TARGETS.hitRatePoints,
    ),
    check(
      `backup within ${TARGETS.backupVsUnthrottled}x its unthrottled duration`,
      x(i.backup),
      i.backup <= TARGETS.backupVsUnthrottled,
    ),
  ];
}

/**
 * The frontier: Headroom must cost the foreground less (HTTP and disk p99) than every fixed budget that
 * ends the backup no later than it does. Fixed budgets that end later are listed as not comparable.
 */
function frontier(phases: readonly Phase[]): string[] {
  const base = phases.find((p) => p.kind === 'baseline')!;
  const headroom = phases.find((p) => p.kind === 'headroom');
  const fixed = phases.filter((p) => p.kind === 'fixed');
  if (!headroom || headroom.backupSeconds === undefined || fixed.length === 0) return [];
  const h = inflation(headroom, base, undefined);
  const out: string[] = [];
  let beaten = 0;
  let comparable = 0;
  for (const p of fixed) {
    const i = inflation(p, base, undefined);
    if ((p.backupSeconds ?? Infinity) > headroom.backupSeconds) {
      out.push(`frontier: ${p.name} ended later (${f(p.backupSeconds ?? NaN)} s): not comparable`);
      continue;
    }
    comparable++;
    const lower = h.http < i.http && h.disk < i.disk;
    if (lower) beaten++;
    out.push(
      `frontier: ${p.name} ended no later: HTTP ${x(i.http)} vs ${x(h.http)}, disk ${x(i.disk)} vs ${x(h.disk)} -> ` +
        `${lower ? 'Headroom lower' : 'Headroom NOT lower'}`,
    );
  }
  out.push(
    comparable === 0
      ? 'frontier: no fixed budget ended the backup as early as Headroom did -> met'
      : `frontier: Headroom lower than ${beaten} of ${comparable} fixed budget(s) ending no later -> ${beaten === comparable ? 'met' : 'MISSED'}`,
  );
  return out;
}

/** The whole report of one run: `intro` lines, the table, the phases' notes, targets and frontier. */
export function renderPenaltyReport(intro: readonly string[], phases: readonly Phase[]): string {
  const out = [...intro, '', ...table(phases), ''];
  for (const p of phases) {
    if (p.httpErrors > 0) out.push(`${p.name}: ${p.httpErrors} HTTP errors`);
    for (const n of p.notes) out.push(`${p.name}: ${n}`);
  }
  out.push(...targets(phases), ...frontier(phases));
  return out.join('\n');
}

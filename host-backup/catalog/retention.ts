/**
 * Retention, pure: which backups of one disk a policy keeps (the last N, the latest of each of the last N
 * days and weeks that have backups, as restic's --keep-* count them) and which can go. A backup is only
 * removed when no kept backup reads through it: every kept incremental keeps its whole chain. The latest
 * backup is always kept, since the next incremental is built on it. Days and weeks are UTC; weeks start
 * on Monday.
 */
import { type BackupRecord, chainTo } from './chain-rules';

export interface RetentionPolicy {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
}

export interface RetentionDecision {
  /** Oldest first. */
  keep: BackupRecord[];
  /** Newest first: the order to remove them in, children before the parents they read through. */
  remove: BackupRecord[];
  /** Why each kept backup is kept. */
  why: Map<string, string[]>;
}

const DAY_MS = 86_400_000;

function dayKey(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The Monday (UTC) that starts the week of `ms`; 1970-01-01 was a Thursday. */
function weekKey(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  const monday = day - ((day + 3) % 7);
  return `week of ${dayKey(monday * DAY_MS)}`;
}

/** The latest backup of each of the `n` most recent buckets that have backups; `newest` is newest first. */
function latestPerBucket(
  newest: readonly BackupRecord[],
  n: number,
  key: (ms: number) => string,
): Array<[BackupRecord, string]> {
  const out: Array<[BackupRecord, string]> = [];
  const seen = new Set<string>();
  for (const r of newest) {
    if (out.length >= n) break;
    const k = key(r.takenAtMs);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push([r, k]);
  }
  return out;
}

/** Applies `policy` to the backups of one disk. */
export function applyRetention(records: readonly BackupRecord[], policy: RetentionPolicy): RetentionDecision {
  const newest = [...records].sort((a, b) => b.takenAtMs - a.takenAtMs || b.id.localeCompare(a.id));
  const why = new Map<string, string[]>();
  const mark = (r: BackupRecord, reason: string) => why.set(r.id, [...(why.get(r.id) ?? []), reason]);

  if (newest.length) mark(newest[0], 'latest (the next incremental builds on it)');
  newest.slice(0, policy.keepLast ?? 0).forEach((r, i) => mark(r, `last ${i + 1}`));
  for (const [r, k] of latestPerBucket(newest, policy.keepDaily ?? 0, dayKey)) mark(r, `daily ${k}`);
  for (const [r, k] of latestPerBucket(newest, policy.keepWeekly ?? 0, weekKey)) mark(r, `weekly ${k}`);

  // What a kept backup reads through is kept too. A chain the catalog cannot follow keeps all of its members.
  for (const id of [...why.keys()]) {
    const r = records.find((x) => x.id === id)!;
    let ancestors: BackupRecord[];
    try {
      ancestors = chainTo(records, r).slice(0, -1);
    } catch {
      ancestors = records.filter((x) => x.chainId === r.chainId && x.takenAtMs < r.takenAtMs);
    }
    for (const a of ancestors) if (!why.get(a.id)?.some((w) => w.startsWith('base of'))) mark(a, `base of ${r.id}`);
  }
  const keep = newest.filter((r) => why.has(r.id)).reverse();
  const remove = newest.filter((r) => !why.has(r.id));
  return { keep, remove, why };
}

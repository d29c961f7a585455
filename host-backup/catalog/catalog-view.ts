/**
 * What an administrator asks of a backup directory — list, inspect one backup, verify checksums, prune —
 * answered over a ManifestStore for both sides that ask: headroomctl on a machine that sees the directory
 * (`--dir`), and the coordinator's admin calls (rpc/snapshot-service.ts). A manifest that cannot be read is
 * reported with the rest, never fatal: one broken file must not hide a catalog.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type BackupRecord, chainTo } from './chain-rules';
import type { CatalogProblem, ManifestStore } from './manifest-store';
import { type RetentionPolicy, applyRetention } from './retention';

export interface CatalogFilter {
  vm?: string;
  disk?: string;
}

export interface ListedBackup {
  record: BackupRecord;
  /** The qcow2 file, absolute. */
  path: string;
  /** Empty when the backup can be read back (its file and its chain's are there); else what is wrong. */
  chainProblem: string;
}

export interface InterruptedBackup {
  vm: string;
  disk: string;
  id: string;
}

export interface CatalogListing {
  /** Oldest first. */
  backups: ListedBackup[];
  /** Older backups left out by the limit. */
  omitted: number;
  problems: CatalogProblem[];
  interrupted: InterruptedBackup[];
}

const byTime = (a: BackupRecord, b: BackupRecord) =>
  a.takenAtMs - b.takenAtMs || a.disk.localeCompare(b.disk) || a.id.localeCompare(b.id);
const diskKey = (r: { vm: string; disk: string }) => `${r.vm}/${r.disk}`;

/** Why `record` cannot be read back from the catalog, or '' when it can (cheap: sizes, not checksums). */
export function chainProblem(store: ManifestStore, records: readonly BackupRecord[], record: BackupRecord): string {
  if (!store.fileIntact(record)) return 'file missing';
  try {
    const links = chainTo(
      records.filter((x) => x.vm === record.vm && x.disk === record.disk),
      record,
    );
    const missing = links.find((l) => !store.fileIntact(l));
    return missing ? `needs missing ${missing.id}` : '';
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The newest `limit` backups matching `filter` (all without a limit), oldest first, with the manifests
 * that could not be read and the interrupted runs.
 */
export function listBackups(store: ManifestStore, filter: CatalogFilter = {}, limit = Infinity): CatalogListing {
  const { records, problems } = store.scan(filter.vm, filter.disk);
  records.sort(byTime);
  const disks = new Map<string, { vm: string; disk: string }>();
  for (const r of [...records, ...problems]) disks.set(diskKey(r), { vm: r.vm, disk: r.disk });
  const omitted = Math.max(0, records.length - limit);
  return {
    omitted,
    backups: records
      .slice(omitted)
      .map((record) => ({ record, path: store.pathOf(record), chainProblem: chainProblem(store, records, record) })),
    problems,
    interrupted: [...disks.values()].flatMap(({ vm, disk }) =>
      store.interrupted(vm, disk).map((id) => ({ vm, disk, id })),
    ),
  };
}

export interface BackupDetail {
  backup: ListedBackup;
  /** Oldest (the full backup) first, ending with the backup; empty when the chain is broken. */
  chain: ListedBackup[];
  /** The manifest file as it is on disk. */
  manifestText: string;
}

/** One backup by id (looked for under `vm` when given), or undefined when the catalog has no such backup. */
export function findBackup(store: ManifestStore, id: string, vm?: string): BackupDetail | undefined {
  const { records } = store.scan(vm);
  const record = records.find((r) => r.id === id);
  if (!record) return undefined;
  const listed = (r: BackupRecord): ListedBackup => ({
    record: r,
    path: store.pathOf(r),
    chainProblem: chainProblem(store, records, r),
  });
  let chain: BackupRecord[] = [];
  try {
    chain = chainTo(
      records.filter((r) => r.vm === record.vm && r.disk === record.disk),
      record,
    );
  } catch {
    // chainProblem says what is wrong.
  }
  let manifestText: string;
  try {
    manifestText = fs.readFileSync(path.join(store.dir, record.vm, record.disk, `${record.id}.json`), 'utf8');
  } catch {
    return undefined; // removed (pruned) since it was read
  }
  return { backup: listed(record), chain: chain.map(listed), manifestText };
}

export type Verification =
  { record: BackupRecord; path: string; ok: boolean; problem?: string; actual?: string } | { problem: CatalogProblem };

/** What verifyBackups will check: the backups matching the filter (one, with `id`) and the unreadable manifests. */
export function verificationPlan(
  store: ManifestStore,
  filter: CatalogFilter & { id?: string },
): { records: BackupRecord[]; problems: CatalogProblem[] } {
  const { records, problems } = store.scan(filter.vm, filter.disk);
  records.sort(byTime);
  if (filter.id !== undefined) return { records: records.filter((r) => r.id === filter.id), problems: [] };
  return { records, problems };
}

/**
 * Recomputes each file's SHA-256, one at a time (they are large), yielding each result as it is known;
 * unreadable manifests come first, as failures. Stops between files once `signal` is aborted.
 */
export async function* verifyBackups(
  store: ManifestStore,
  plan: { records: readonly BackupRecord[]; problems: readonly CatalogProblem[] },
  signal?: AbortSignal,
): AsyncGenerator<Verification> {
  for (const problem of plan.problems) yield { problem };
  for (const record of plan.records) {
    if (signal?.aborted) return;
    const v = await store.verify(record);
    yield { record, path: store.pathOf(record), ok: v.ok, problem: v.problem, actual: v.actual };
  }
}

export interface PruneDecision {
  record: BackupRecord;
  keep: boolean;
  why: string[];
}

export interface PruneResult {
  /** By disk: kept oldest first, then removed newest first. */
  decisions: PruneDecision[];
  freedBytes: number;
  /** Disks with an unreadable manifest are left alone: what a kept backup reads through cannot be known. */
  problems: CatalogProblem[];
}

/**
 * Applies `policy` disk by disk (catalog/retention.ts) and, unless `dryRun`, removes what it does not keep,
 * newest first so that no kept backup ever reads through a removed one.
 */
export function pruneBackups(
  store: ManifestStore,
  filter: CatalogFilter,
  policy: RetentionPolicy,
  dryRun: boolean,
): PruneResult {
  const { records, problems } = store.scan(filter.vm, filter.disk);
  const broken = new Set(problems.map(diskKey));
  const decisions: PruneDecision[] = [];
  let freedBytes = 0;
  for (const key of [...new Set(records.map(diskKey))].sort()) {
    if (broken.has(key)) continue;
    const decision = applyRetention(
      records.filter((r) => diskKey(r) === key),
      policy,
    );
    for (const r of decision.keep) decisions.push({ record: r, keep: true, why: decision.why.get(r.id) ?? [] });
    for (const r of decision.remove) {
      if (!dryRun) store.remove(r);
      freedBytes += r.fileBytes;
      decisions.push({ record: r, keep: false, why: [] });
    }
  }
  return { decisions, freedBytes, problems };
}

/** The backups a prune removed (or would remove). */
export function removedBy(result: PruneResult): BackupRecord[] {
  return result.decisions.filter((d) => !d.keep).map((d) => d.record);
}

/**
 * What every hypervisor driver (qmp-driver.ts, libvirt-driver.ts) does around the copy itself: names the
 * backup set and each disk's backup, plans each disk with the catalog's rules (full or incremental, and
 * why), records a completed disk in the catalog, and sums up the run. The drivers differ only in how
 * they observe the disks and make the copy.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/util/log';
import {
  type BackupPlan,
  type BackupRecord,
  type Consistency,
  type DiskObservation,
  planNextBackup,
} from '../catalog/chain-rules';
import { type ManifestStore, sha256File } from '../catalog/manifest-store';

export interface DiskBackupResult {
  disk: string;
  plan: BackupPlan;
  /** The catalog record, when this disk's backup completed. */
  record?: BackupRecord;
  /** Why it did not. */
  error?: string;
}

export interface HypervisorBackupResult {
  ok: boolean;
  setId: string;
  /** What the snapshot achieved (recorded in each manifest). */
  consistency: Consistency;
  disks: DiskBackupResult[];
  message: string;
}

/** How a run chooses between full and incremental, beyond what the catalog and the disk say. */
export interface PlanChoice {
  forceFull?: boolean;
  /** Make a full backup once a chain holds this many incrementals; 0 or absent: no limit. */
  maxIncrementals?: number;
}

/** One disk's backup as planned: the catalog's decision, the backup's id and its qcow2 file (relative). */
export interface PlannedDisk {
  name: string;
  observed: DiskObservation;
  plan: BackupPlan;
  id: string;
  file: string;
  /** Random, unique in the run: names what the driver makes for this disk (nodes, jobs). */
  suffix: string;
}

function stamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** The id every disk's backup of one run shares. */
export function newSetId(startedAtMs: number): string {
  return `${stamp(startedAtMs)}-${randomBytes(3).toString('hex')}`;
}

/** Plans one disk's backup with the catalog's rules (catalog/chain-rules.ts) and names it. */
export function planDisk(
  store: ManifestStore,
  vm: string,
  disk: string,
  observed: DiskObservation,
  choice: PlanChoice,
  startedAtMs: number,
  log: Logger,
): PlannedDisk {
  const plan = planNextBackup({
    records: store.records(vm, disk),
    disk: observed,
    interrupted: store.interrupted(vm, disk),
    fileIntact: (r) => store.fileIntact(r),
    forceFull: choice.forceFull,
    maxIncrementals: choice.maxIncrementals,
  });
  const suffix = randomBytes(3).toString('hex');
  const id = `${stamp(startedAtMs)}-${plan.kind === 'full' ? 'full' : 'inc'}-${suffix}`;
  const { relative } = store.diskDir(vm, disk);
  log.info(
    plan.kind === 'full' ? `full backup: ${plan.reason.text}` : `incremental backup on top of ${plan.parent.id}`,
    { disk },
  );
  return { name: disk, observed, plan, id, file: path.join(relative, `${id}.qcow2`), suffix };
}

/** What the driver knows of a disk's completed copy; the rest of the record follows from the plan. */
export type CopyFacts = Pick<
  BackupRecord,
  'setId' | 'bitmap' | 'bitmapPersistent' | 'takenAtMs' | 'durationMs' | 'bytes' | 'consistency'
> &
  Pick<Partial<BackupRecord>, 'checkpoint' | 'libvirtUri'>;

/** Writes the manifest of a disk whose copy completed (its qcow2 file is complete) and ends its started note. */
export async function recordDisk(
  store: ManifestStore,
  vm: string,
  p: PlannedDisk,
  facts: CopyFacts,
): Promise<DiskBackupResult> {
  const target = store.pathOf(p);
  const record: BackupRecord = {
    id: p.id,
    vm,
    disk: p.name,
    kind: p.plan.kind,
    fullReason: p.plan.kind === 'full' ? p.plan.reason.text : undefined,
    fullReasonCode: p.plan.kind === 'full' ? p.plan.reason.code : undefined,
    parentId: p.plan.kind === 'incremental' ? p.plan.parent.id : undefined,
    chainId: p.plan.kind === 'incremental' ? p.plan.parent.chainId : p.id,
    ...facts,
    fileBytes: fs.statSync(target).size,
    virtualSize: p.observed.virtualSize,
    file: p.file,
    sha256: await sha256File(target),
  };
  store.write(record);
  store.ended(vm, p.name);
  return { disk: p.name, plan: p.plan, record };
}

/**
 * A disk whose copy did not complete: its file goes; with its outcome known, its started note too
 * (unknown: the job may yet finish and clear the bitmap, and the note makes the next backup full).
 */
export function discardDisk(
  store: ManifestStore,
  vm: string,
  p: PlannedDisk,
  why: string,
  outcomeKnown: boolean,
): DiskBackupResult {
  fs.rmSync(store.pathOf(p), { force: true });
  if (outcomeKnown) store.ended(vm, p.name);
  return {
    disk: p.name,
    plan: p.plan,
    error: outcomeKnown ? why : `${why}; the job's end is unknown, so the next backup will be full`,
  };
}

/** The run's result from its disks' results, logged. */
export function summarise(
  setId: string,
  consistency: Consistency,
  results: DiskBackupResult[],
  log: Logger,
): HypervisorBackupResult {
  const ok = results.every((r) => r.record);
  const message = ok
    ? results.map((r) => `${r.disk}: ${r.record!.kind} ${r.record!.id} (${r.record!.bytes} bytes copied)`).join('; ')
    : results.map((r) => `${r.disk}: ${r.error ?? 'completed, but the set is incomplete'}`).join('; ');
  log[ok ? 'info' : 'warn'](ok ? 'backup done' : 'backup failed', { result: message });
  return { ok, setId, consistency, disks: results, message };
}

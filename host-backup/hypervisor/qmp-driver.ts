/**
 * The `qmp` hypervisor driver: backs up the disks of one running QEMU (or qemu-storage-daemon) over QMP
 * into a catalog directory. Per disk, a persistent dirty bitmap records writes since the last backup; the
 * catalog's rules (catalog/chain-rules.ts) decide full or incremental; every disk of the VM is backed up in
 * one `transaction` with `completion-mode: grouped`, so the disks hold one point in time and either all
 * succeed or all are cancelled.
 *
 * Bitmaps follow `bitmap-mode: on-success` (implied by `sync: incremental`, explicit for a full backup's
 * `sync: full`): QEMU clears a bitmap only when its job succeeds, so after a failure or a cancel it still
 * holds every write since the last good backup and a retry covers the same data.
 */
import type { Logger } from '../../common/util/log';
import type { Consistency, DiskObservation } from '../catalog/chain-rules';
import type { ManifestStore } from '../catalog/manifest-store';
import {
  type DiskBackupResult,
  type HypervisorBackupResult,
  type PlannedDisk,
  discardDisk,
  newSetId,
  planDisk,
  recordDisk,
  summarise,
} from './backup-set';
import { BlockJobWatcher, type JobOutcome, type JobProgress } from './block-jobs';
import { type DiskSpec, type NodeInfo, findNode, observe } from './block-nodes';
import type { OnCopyStarted } from './copy-control';
import { QmpCopyControl } from './qmp-copy-control';
import { QemuImg } from '../qemu-img';
import { type QmpClient, QmpCommandError } from './qmp-client';

/** Names of the block nodes and jobs this driver makes, so that leftovers can be recognised. */
const TARGET_PREFIX = 'headroom-target-';
const JOB_PREFIX = 'headroom-backup-';

export interface QmpBackupOptions {
  vm: string;
  disks: readonly DiskSpec[];
  store: ManifestStore;
  forceFull?: boolean;
  /** Make a full backup once a chain holds this many incrementals; 0 or absent: no limit. */
  maxIncrementals?: number;
  /** What the guest did for this backup; 'crash' until it is quiesced. */
  consistency?: Consistency;
  /**
   * Called right before the `transaction` that starts the block jobs (the snapshot point) and right after
   * it returned or failed: the guest's quiesce (../guest-quiesce.ts), kept out of this driver. `before`
   * may throw to stop the backup; `after` answers the consistency recorded, in place of `consistency`.
   */
  snapshotPoint?: { before(): Promise<void>; after(): Promise<Consistency> };
  /** Wall clock, Unix ms: names backups and times them. */
  now: () => number;
  /** Limit on each job's copying, bytes per second (QEMU's `speed`); 0 or absent: none. */
  speed?: number;
  /** Aborting cancels the jobs; bitmaps keep their bits. */
  signal?: AbortSignal;
  /**
   * Called once the jobs run, with the control over their copy (speed, pause): host-backup's budget reaches
   * QEMU through it (../copy-control-channel.ts). Returns what to call once the jobs have ended.
   */
  onCopyStarted?: OnCopyStarted;
  onProgress?(progress: Array<{ disk: string; offset: number; len: number }>): void;
  pollIntervalMs?: number;
  log: Logger;
  qemuImg?: QemuImg;
}

export type { DiskBackupResult };
export type QmpBackupResult = HypervisorBackupResult;

/** One disk's part in the run. */
interface Prepared extends PlannedDisk {
  spec: DiskSpec;
  nodeName: string;
  observed: DiskObservation;
  targetNode: string;
  jobId: string;
  targetAdded: boolean;
  /** We (re)created the bitmap for this full backup: if it fails, the bitmap must go, lest it pass for the old chain's. */
  bitmapCreated: boolean;
  persistent: boolean;
}

/** Backs up the VM's disks once; never leaves targets attached in QEMU, nor half-written files in the catalog. */
export async function backupVm(client: QmpClient, o: QmpBackupOptions): Promise<QmpBackupResult> {
  if (o.disks.length === 0) throw new Error('no disks to back up');
  const names = new Set(o.disks.map((d) => d.name));
  if (names.size !== o.disks.length) throw new Error('two disks share a catalog name');
  const qemuImg = o.qemuImg ?? new QemuImg();
  const bitmap = o.store.bitmapName;
  const startedAt = o.now();
  const setId = newSetId(startedAt);
  const log = o.log.child({ vm: o.vm, set: setId });

  await detachLeftoverTargets(client, log);
  const prepared: Prepared[] = [];
  for (const spec of o.disks) {
    const node = await findNode(client, spec.node);
    const observed = observe(node, bitmap);
    if (observed.bitmap?.busy)
      throw new Error(
        `disk ${spec.name}: dirty bitmap ${bitmap} is in use by another job (is a backup already running?)`,
      );
    const planned = planDisk(o.store, o.vm, spec.name, observed, o, startedAt, log);
    prepared.push({
      ...planned,
      spec,
      nodeName: node['node-name'],
      observed,
      targetNode: `${TARGET_PREFIX}${planned.suffix}`,
      jobId: `${JOB_PREFIX}${planned.suffix}`,
      targetAdded: false,
      bitmapCreated: false,
      // Only qcow2 can store a bitmap; on other formats a new one lives as long as the QEMU process.
      persistent: node.drv === 'qcow2',
    });
  }

  const watcher = new BlockJobWatcher(
    client,
    prepared.map((p) => p.jobId),
    log,
  );
  let outcomes: Map<string, JobOutcome> | undefined;
  let transactionAtMs = 0;
  let failure: string | undefined;
  let consistency: Consistency = o.consistency ?? 'crash';
  // Whether the jobs' fate is known: not when QMP was lost after the transaction was sent.
  let outcomeKnown = true;
  try {
    for (const p of prepared) {
      if (p.plan.kind === 'full') await prepareFullBitmap(client, p, bitmap);
      const target = o.store.pathOf(p);
      const backing = p.plan.kind === 'incremental' ? o.store.pathOf(p.plan.parent) : undefined;
      await qemuImg.createQcow2(target, p.observed.virtualSize, backing);
      await client.execute('blockdev-add', {
        'node-name': p.targetNode,
        driver: 'qcow2',
        file: { driver: 'file', filename: target },
      });
      p.targetAdded = true;
    }
    const actions = prepared.map((p) => ({
      type: 'blockdev-backup',
      data: {
        'job-id': p.jobId,
        device: p.nodeName,
        target: p.targetNode,
        bitmap,
        speed: o.speed ?? 0,
        ...(p.plan.kind === 'full' ? { sync: 'full', 'bitmap-mode': 'on-success' } : { sync: 'incremental' }),
      },
    }));
    await o.snapshotPoint?.before();
    try {
      for (const p of prepared) o.store.started(o.vm, p.spec.name, p.id);
      transactionAtMs = o.now();
      outcomeKnown = false;
      try {
        await client.execute('transaction', { actions, properties: { 'completion-mode': 'grouped' } });
      } catch (err) {
        // Refused by QEMU: no job started.
        if (err instanceof QmpCommandError) outcomeKnown = true;
        throw err;
      }
    } finally {
      // The point in time is fixed once the transaction returned: the guest may run on.
      if (o.snapshotPoint) consistency = await o.snapshotPoint.after();
    }
    const stopControlling = o.onCopyStarted?.(
      new QmpCopyControl(
        client,
        prepared.map((p) => p.jobId),
      ),
    );
    try {
      outcomes = await watcher.wait({
        signal: o.signal,
        pollIntervalMs: o.pollIntervalMs,
        onProgress: (jobs: JobProgress[]) =>
          o.onProgress?.(
            jobs.map((j) => ({
              disk: prepared.find((p) => p.jobId === j.jobId)?.spec.name ?? j.jobId,
              offset: j.offset,
              len: j.len,
            })),
          ),
      });
    } finally {
      await stopControlling?.();
    }
    outcomeKnown = true;
  } catch (err) {
    failure = (err as Error).message;
    log.error('backup could not run', { error: failure });
  } finally {
    watcher.dispose();
    for (const p of prepared) {
      if (!p.targetAdded) continue;
      await client
        .execute('blockdev-del', { 'node-name': p.targetNode })
        .catch((err: Error) => log.warn('could not detach the target', { node: p.targetNode, error: err.message }));
    }
  }
  const endedAt = o.now();

  const results: DiskBackupResult[] = [];
  for (const p of prepared) {
    const outcome = outcomes?.get(p.jobId);
    if (!outcome || outcome.status !== 'completed') {
      const why = failure ?? (outcome?.status === 'failed' ? `job failed: ${outcome.error}` : 'job cancelled');
      if (p.bitmapCreated) {
        await client
          .execute('block-dirty-bitmap-remove', { node: p.nodeName, name: bitmap })
          .catch((err: Error) => log.warn('could not remove the new bitmap', { error: err.message }));
      }
      results.push(discardDisk(o.store, o.vm, p, why, outcomeKnown));
      continue;
    }
    results.push(
      await recordDisk(o.store, o.vm, p, {
        setId,
        bitmap,
        // A bitmap that was there already keeps its own kind.
        bitmapPersistent: p.bitmapCreated ? p.persistent : (p.observed.bitmap?.persistent ?? p.persistent),
        takenAtMs: watcher.createdAtMs(p.jobId) ?? transactionAtMs,
        durationMs: endedAt - transactionAtMs,
        bytes: outcome.len,
        consistency,
      }),
    );
  }
  return summarise(setId, consistency, results, log);
}

/**
 * Target nodes a backup process left attached when it died: detached unless a job of ours still runs
 * (then the bitmap is busy and this backup stops anyway).
 */
async function detachLeftoverTargets(client: QmpClient, log: Logger): Promise<void> {
  const jobs = await client.execute<Array<{ device: string }>>('query-block-jobs');
  if (jobs.some((j) => j.device.startsWith(JOB_PREFIX))) return;
  const nodes = await client.execute<NodeInfo[]>('query-named-block-nodes', { flat: true });
  for (const n of nodes) {
    if (!n['node-name'].startsWith(TARGET_PREFIX)) continue;
    log.warn('detaching a backup target left behind', { node: n['node-name'] });
    await client
      .execute('blockdev-del', { 'node-name': n['node-name'] })
      .catch((err: Error) => log.warn('could not detach it', { error: err.message }));
  }
}

/**
 * A full backup synchronises the bitmap on success. A bitmap that cannot be trusted (inconsistent after
 * an unclean stop, or disabled) is replaced; a missing one is added.
 */
async function prepareFullBitmap(client: QmpClient, p: Prepared, bitmap: string): Promise<void> {
  const b = p.observed.bitmap;
  if (b && (b.inconsistent || !b.recording)) {
    await client.execute('block-dirty-bitmap-remove', { node: p.nodeName, name: bitmap });
  } else if (b) {
    return;
  }
  await client.execute('block-dirty-bitmap-add', { node: p.nodeName, name: bitmap, persistent: p.persistent });
  p.bitmapCreated = true;
}

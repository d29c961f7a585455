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
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/log';
import { type BackupPlan, type BackupRecord, type BitmapObservation, type Consistency, type DiskObservation, planNextBackup } from '../catalog/chain-rules';
import { type ManifestStore, sha256File } from '../catalog/manifest-store';
import { BlockJobWatcher, type JobOutcome, type JobProgress } from './block-jobs';
import { QemuImg } from './qemu-img';
import type { QmpClient } from './qmp-client';

/** A disk to back up: its name in the catalog, and the QMP node or device name that holds its image. */
export interface DiskSpec {
  name: string;
  node: string;
}

export interface QmpBackupOptions {
  vm: string;
  disks: readonly DiskSpec[];
  store: ManifestStore;
  forceFull?: boolean;
  /** Make a full backup once a chain holds this many incrementals; 0 or absent: no limit. */
  maxIncrementals?: number;
  /** What the guest did for this backup; 'crash' until it is quiesced. */
  consistency?: Consistency;
  /** Wall clock, Unix ms: names backups and times them. */
  now: () => number;
  /** Limit on each job's copying, bytes per second (QEMU's `speed`); 0 or absent: none. */
  speed?: number;
  /** Aborting cancels the jobs; bitmaps keep their bits. */
  signal?: AbortSignal;
  onProgress?(progress: Array<{ disk: string; offset: number; len: number }>): void;
  pollIntervalMs?: number;
  log: Logger;
  qemuImg?: QemuImg;
}

export interface DiskBackupResult {
  disk: string;
  plan: BackupPlan;
  /** The catalog record, when this disk's backup completed. */
  record?: BackupRecord;
  /** Why it did not. */
  error?: string;
}

export interface QmpBackupResult {
  ok: boolean;
  setId: string;
  disks: DiskBackupResult[];
  message: string;
}

/** What QMP tells about a block node (query-named-block-nodes). */
interface NodeInfo {
  'node-name': string;
  drv: string;
  image: { 'virtual-size': number };
  'dirty-bitmaps'?: Array<{ name: string; persistent: boolean; recording: boolean; busy: boolean; inconsistent?: boolean }>;
}

/** Finds the node behind a node name, or behind a device's name (query-block) as `-drive` guests have. */
async function findNode(client: QmpClient, name: string): Promise<NodeInfo> {
  const nodes = await client.execute<NodeInfo[]>('query-named-block-nodes', { flat: true });
  let node = nodes.find((n) => n['node-name'] === name);
  if (!node) {
    const devices = await client.execute<Array<{ device: string; qdev?: string; inserted?: { 'node-name': string } }>>('query-block');
    const device = devices.find((d) => d.device === name || d.qdev === name);
    const nodeName = device?.inserted?.['node-name'];
    node = nodeName === undefined ? undefined : nodes.find((n) => n['node-name'] === nodeName);
  }
  if (!node) throw new Error(`QEMU has no block node or device named "${name}"`);
  return node;
}

/**
 * The disks of the QEMU process, when none are named: a VM's drives with a medium (query-block), or what
 * a qemu-storage-daemon exports (query-block-exports), each named after its device or node.
 */
export async function discoverDisks(client: QmpClient): Promise<DiskSpec[]> {
  const devices = await client.execute<Array<{ device: string; qdev?: string; inserted?: { 'node-name': string } }>>('query-block');
  // -drive guests have device names; -blockdev guests (libvirt) only node names.
  const drives = devices.flatMap((d) => (d.inserted ? [d.device || d.inserted['node-name']] : []));
  if (drives.length) return drives.map((n) => ({ name: n, node: n }));
  const exports = await client.execute<Array<{ 'node-name': string }>>('query-block-exports').catch(() => []);
  return [...new Set(exports.map((e) => e['node-name']))].map((n) => ({ name: n, node: n }));
}

function observe(node: NodeInfo, bitmap: string): DiskObservation {
  const b = node['dirty-bitmaps']?.find((x) => x.name === bitmap);
  const observed: BitmapObservation | undefined = b && {
    persistent: b.persistent,
    recording: b.recording,
    inconsistent: b.inconsistent === true,
    busy: b.busy,
  };
  return { virtualSize: node.image['virtual-size'], bitmap: observed };
}

/** One disk's part in the run. */
interface Prepared {
  spec: DiskSpec;
  nodeName: string;
  observed: DiskObservation;
  plan: BackupPlan;
  id: string;
  file: string;
  targetNode: string;
  jobId: string;
  targetAdded: boolean;
  /** We (re)created the bitmap for this full backup: if it fails, the bitmap must go, lest it pass for the old chain's. */
  bitmapCreated: boolean;
  persistent: boolean;
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Backs up the VM's disks once; never leaves targets attached in QEMU, nor half-written files in the catalog. */
export async function backupVm(client: QmpClient, o: QmpBackupOptions): Promise<QmpBackupResult> {
  if (o.disks.length === 0) throw new Error('no disks to back up');
  const names = new Set(o.disks.map((d) => d.name));
  if (names.size !== o.disks.length) throw new Error('two disks share a catalog name');
  const qemuImg = o.qemuImg ?? new QemuImg();
  const bitmap = o.store.bitmapName;
  const startedAt = o.now();
  const setId = `${stamp(startedAt)}-${randomBytes(3).toString('hex')}`;
  const log = o.log.child({ vm: o.vm, set: setId });

  const prepared: Prepared[] = [];
  for (const spec of o.disks) {
    const node = await findNode(client, spec.node);
    const observed = observe(node, bitmap);
    if (observed.bitmap?.busy) throw new Error(`disk ${spec.name}: dirty bitmap ${bitmap} is in use by another job (is a backup already running?)`);
    const records = o.store.records(o.vm, spec.name);
    const plan = planNextBackup({
      records,
      disk: observed,
      fileIntact: (r) => o.store.fileIntact(r),
      forceFull: o.forceFull,
      maxIncrementals: o.maxIncrementals,
    });
    const suffix = randomBytes(3).toString('hex');
    const id = `${stamp(startedAt)}-${plan.kind === 'full' ? 'full' : 'inc'}-${suffix}`;
    const { relative } = o.store.diskDir(o.vm, spec.name);
    prepared.push({
      spec,
      nodeName: node['node-name'],
      observed,
      plan,
      id,
      file: path.join(relative, `${id}.qcow2`),
      targetNode: `headroom-target-${suffix}`,
      jobId: `headroom-backup-${suffix}`,
      targetAdded: false,
      bitmapCreated: false,
      // Only qcow2 can store a bitmap; on other formats it lives as long as the QEMU process.
      persistent: node.drv === 'qcow2',
    });
    log.info(plan.kind === 'full' ? `full backup: ${plan.reason.text}` : `incremental backup on top of ${plan.parent.id}`, { disk: spec.name });
  }

  const watcher = new BlockJobWatcher(client, prepared.map((p) => p.jobId), log);
  let outcomes: Map<string, JobOutcome> | undefined;
  let transactionAtMs = 0;
  let failure: string | undefined;
  try {
    for (const p of prepared) {
      if (p.plan.kind === 'full') await prepareFullBitmap(client, p, bitmap);
      const target = o.store.pathOf(p);
      const backing = p.plan.kind === 'incremental' ? o.store.pathOf(p.plan.parent) : undefined;
      await qemuImg.createQcow2(target, p.observed.virtualSize, backing);
      await client.execute('blockdev-add', { 'node-name': p.targetNode, driver: 'qcow2', file: { driver: 'file', filename: target } });
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
    transactionAtMs = o.now();
    await client.execute('transaction', { actions, properties: { 'completion-mode': 'grouped' } });
    outcomes = await watcher.wait({
      signal: o.signal,
      pollIntervalMs: o.pollIntervalMs,
      onProgress: (jobs: JobProgress[]) =>
        o.onProgress?.(jobs.map((j) => ({ disk: prepared.find((p) => p.jobId === j.jobId)?.spec.name ?? j.jobId, offset: j.offset, len: j.len }))),
    });
  } catch (err) {
    failure = (err as Error).message;
    log.error('backup could not run', { error: failure });
  } finally {
    watcher.dispose();
    for (const p of prepared) {
      if (!p.targetAdded) continue;
      await client.execute('blockdev-del', { 'node-name': p.targetNode }).catch((err: Error) => log.warn('could not detach the target', { node: p.targetNode, error: err.message }));
    }
  }
  const endedAt = o.now();

  const results: DiskBackupResult[] = [];
  for (const p of prepared) {
    const outcome = outcomes?.get(p.jobId);
    const target = o.store.pathOf(p);
    if (!outcome || outcome.status !== 'completed') {
      const why = failure ?? (outcome?.status === 'failed' ? `job failed: ${outcome.error}` : 'job cancelled');
      fs.rmSync(target, { force: true });
      if (p.bitmapCreated) {
        await client.execute('block-dirty-bitmap-remove', { node: p.nodeName, name: bitmap }).catch((err: Error) => log.warn('could not remove the new bitmap', { error: err.message }));
      }
      results.push({ disk: p.spec.name, plan: p.plan, error: why });
      continue;
    }
    const record: BackupRecord = {
      id: p.id,
      vm: o.vm,
      disk: p.spec.name,
      setId,
      kind: p.plan.kind,
      fullReason: p.plan.kind === 'full' ? p.plan.reason.text : undefined,
      parentId: p.plan.kind === 'incremental' ? p.plan.parent.id : undefined,
      chainId: p.plan.kind === 'incremental' ? p.plan.parent.chainId : p.id,
      bitmap,
      bitmapPersistent: p.persistent,
      takenAtMs: watcher.createdAtMs(p.jobId) ?? transactionAtMs,
      durationMs: endedAt - transactionAtMs,
      bytes: outcome.len,
      fileBytes: fs.statSync(target).size,
      virtualSize: p.observed.virtualSize,
      consistency: o.consistency ?? 'crash',
      file: p.file,
      sha256: await sha256File(target),
    };
    o.store.write(record);
    results.push({ disk: p.spec.name, plan: p.plan, record });
  }
  const ok = results.every((r) => r.record);
  const message = ok
    ? results.map((r) => `${r.disk}: ${r.record!.kind} ${r.record!.id} (${r.record!.bytes} bytes copied)`).join('; ')
    : results.map((r) => `${r.disk}: ${r.error ?? 'completed, but the set is incomplete'}`).join('; ');
  log[ok ? 'info' : 'warn'](ok ? 'backup done' : 'backup failed', { result: message });
  return { ok, setId, disks: results, message };
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

/**
 * The `libvirt` hypervisor driver: backs up the disks of one running libvirt domain through libvirt's
 * backup API (`virsh backup-begin`) into a catalog directory, in push mode: libvirt has QEMU write each
 * disk into a qcow2 file we create beforehand (`--reuse-external`), an incremental's backed by its
 * parent's, so that every point restores with `qemu-img convert` alone. Push mode because the copy is then
 * QEMU's block job, which takes a speed and a pause (libvirt-copy-control.ts); in pull mode the copy is an
 * NBD reader of ours, which would need the budget enforcement of a process instead.
 *
 * Each backup creates a checkpoint (`<domaincheckpoint>`, a bitmap per disk named after it), named
 * `<catalog bitmap>-<set id>` so that two catalogs never share one; the next incremental starts from the
 * checkpoint of the latest backup in the catalog (per disk, `backupmode`/`incremental` attributes, so
 * that one backup may be full for one disk and incremental for another). A backup that fails deletes the
 * checkpoint it created: libvirt keeps it even after a cancelled job, and its bitmap would claim a backup
 * that never completed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../common/util/log';
import { type Consistency, latestRecord } from '../catalog/chain-rules';
import type { ManifestStore } from '../catalog/manifest-store';
import { QemuImg } from '../qemu-img';
import {
  type DiskBackupResult,
  type HypervisorBackupResult,
  type PlanChoice,
  type PlannedDisk,
  discardDisk,
  newSetId,
  planDisk,
  recordDisk,
  summarise,
} from './backup-set';
import {
  type CheckpointOnDisk,
  DomainStateError,
  type DomainFacts,
  diskCapacity,
  listCheckpoints,
  observeCheckpoint,
} from './libvirt-domain';
import type { OnCopyStarted } from './copy-control';
import { LibvirtCopyControl } from './libvirt-copy-control';
import { type Virsh, parseFields } from './libvirt-virsh';
import { escapeXml } from './libvirt-xml';

export interface LibvirtBackupOptions extends PlanChoice {
  domain: DomainFacts;
  /** Target devices to back up (vda …); every disk of the domain that can be backed up when absent. */
  disks?: readonly string[];
  store: ManifestStore;
  /** As in qmp-driver.ts: the guest's quiesce right before and after `backup-begin`. */
  snapshotPoint?: { before(): Promise<void>; after(): Promise<Consistency> };
  /** Wall clock, Unix ms: names backups and times them. */
  now: () => number;
  /** Limit on each disk's copy, bytes per second; 0 or absent: none. */
  speed?: number;
  /** Aborting aborts libvirt's job (`domjobabort`). */
  signal?: AbortSignal;
  onProgress?(progress: { done: number; total: number }): void;
  /** Handed the copy's controls once the job runs (the budget and the load controller's pause). */
  onCopyStarted?: OnCopyStarted;
  pollIntervalMs?: number;
  log: Logger;
  qemuImg?: QemuImg;
}

/** How libvirt's job ended (virDomainJobType of the completed job). */
type JobEnd =
  { status: 'completed'; bytes: number } | { status: 'failed' | 'cancelled'; error: string } | { status: 'unknown' };

const JOB_NONE = '0';
const JOB_COMPLETED = '3';
const JOB_CANCELLED = '5';

/** The checkpoints of this catalog: `<bitmap name>-<set id>`. */
function checkpointPrefix(store: ManifestStore): string {
  return `${store.bitmapName}-`;
}

/** Backs up the domain's disks once; never leaves a half-written file in the catalog nor a checkpoint of a failed backup. */
export async function backupDomain(virsh: Virsh, o: LibvirtBackupOptions): Promise<HypervisorBackupResult> {
  const { uuid } = o.domain;
  if (!o.domain.running) throw new DomainStateError(`domain ${o.domain.name} is not running`);
  const disks = o.disks ?? o.domain.disks.map((d) => d.target);
  if (disks.length === 0) throw new DomainStateError(`domain ${o.domain.name} has no disk to back up`);
  for (const target of disks) {
    const disk = o.domain.disks.find((d) => d.target === target);
    if (!disk) throw new DomainStateError(`domain ${o.domain.name} has no disk ${target} that can be backed up`);
    if (disk.format !== 'qcow2')
      throw new DomainStateError(
        `disk ${target} is ${disk.format}: libvirt's checkpoints need qcow2 images to hold their bitmaps`,
      );
  }
  await ensureNoJob(virsh, uuid);
  const qemuImg = o.qemuImg ?? new QemuImg();
  const startedAt = o.now();
  const setId = newSetId(startedAt);
  const checkpoint = `${checkpointPrefix(o.store)}${setId}`;
  const log = o.log.child({ vm: uuid, set: setId });

  await deleteLeftoverCheckpoints(virsh, o.store, uuid, log);
  const known = new Set(await listCheckpoints(virsh, uuid));
  const seen = new Map<string, Map<string, CheckpointOnDisk> | undefined>();
  /** What each disk's copy should hold: the disk for a full, what its checkpoint saw dirty for an incremental. */
  const estimate = new Map<string, number>();
  const planned: PlannedDisk[] = [];
  for (const target of disks) {
    // Only the checkpoint of the disk's latest backup matters to the rules.
    const name = latestRecord(o.store.records(uuid, target))?.checkpoint;
    if (name !== undefined && known.has(name) && !seen.has(name))
      seen.set(name, await observeCheckpoint(virsh, uuid, name));
    const onDisk = name === undefined ? undefined : seen.get(name)?.get(target);
    const observed = {
      virtualSize: await diskCapacity(virsh, uuid, target),
      checkpoints: new Map(name !== undefined && onDisk ? [[name, onDisk]] : []),
    };
    const p = planDisk(o.store, uuid, target, observed, o, startedAt, log);
    estimate.set(target, p.plan.kind === 'full' ? observed.virtualSize : (onDisk?.dirtyBytes ?? 0));
    planned.push(p);
  }

  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-libvirt-'));
  let end: JobEnd = { status: 'unknown' };
  let failure: string | undefined;
  let consistency: Consistency = 'crash';
  let beginAtMs = 0;
  let begun = false;
  try {
    for (const p of planned) {
      const backing = p.plan.kind === 'incremental' ? o.store.pathOf(p.plan.parent) : undefined;
      await qemuImg.createQcow2(o.store.pathOf(p), p.observed.virtualSize, backing);
    }
    const backupXml = path.join(scratch, 'backup.xml');
    const checkpointXml = path.join(scratch, 'checkpoint.xml');
    fs.writeFileSync(backupXml, backupDocument(o.store, planned));
    fs.writeFileSync(checkpointXml, checkpointDocument(checkpoint, planned));
    const control = new LibvirtCopyControl(virsh, uuid, disks);
    let limited: Promise<void> = Promise.resolve();
    await o.snapshotPoint?.before();
    try {
      for (const p of planned) o.store.started(uuid, p.name, p.id);
      beginAtMs = o.now();
      const begin = virsh.run(['backup-begin', uuid, backupXml, checkpointXml, '--reuse-external']);
      if (o.speed) limited = control.limitFromStart(o.speed, begin);
      // Awaited below; a failure is the run's.
      limited.catch(() => undefined);
      await begin;
      begun = true;
    } finally {
      // The point in time is fixed once backup-begin returned: the guest may run on.
      if (o.snapshotPoint) consistency = await o.snapshotPoint.after();
    }
    try {
      await limited;
    } catch (err) {
      // Not to be left copying without its limit.
      await virsh.run(['domjobabort', uuid]).catch(() => undefined);
      throw err;
    }
    const stopControlling = o.onCopyStarted?.(control);
    try {
      end = await waitForJob(virsh, uuid, control, o);
    } finally {
      await stopControlling?.();
    }
  } catch (err) {
    failure = (err as Error).message;
    // Refused by libvirt: no job started, nothing is unknown.
    if (!begun) end = { status: 'failed', error: failure };
    log.error('backup could not run', { error: failure });
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  const endedAt = o.now();

  if (end.status !== 'completed' && begun) {
    await virsh
      .run(['checkpoint-delete', uuid, checkpoint])
      .catch((err: Error) =>
        log.warn('could not delete the failed backup’s checkpoint', { checkpoint, error: err.message }),
      );
  }
  const results: DiskBackupResult[] = [];
  const estimated = [...estimate.values()].reduce((a, b) => a + b, 0);
  for (const p of planned) {
    if (end.status !== 'completed') {
      const why = failure ?? (end.status === 'unknown' ? 'the job ended unseen' : `job ${end.status}: ${end.error}`);
      results.push(discardDisk(o.store, uuid, p, why, end.status !== 'unknown'));
      continue;
    }
    results.push(
      await recordDisk(o.store, uuid, p, {
        setId,
        bitmap: checkpoint,
        bitmapPersistent: true,
        checkpoint,
        libvirtUri: virsh.uri,
        takenAtMs: beginAtMs,
        durationMs: endedAt - beginAtMs,
        // libvirt counts the job as a whole (QEMU's counters summed): shared out as the disks' estimates.
        bytes: estimated ? Math.round((end.bytes * estimate.get(p.name)!) / estimated) : 0,
        consistency,
      }),
    );
  }
  return summarise(setId, consistency, results, log);
}

/** libvirt runs one job per domain: a backup (ours or anyone's) already running is named, not waited for. */
async function ensureNoJob(virsh: Virsh, domain: string): Promise<void> {
  const stats = parseFields(await virsh.run(['domjobinfo', domain, '--rawstats']), ':');
  if (stats.get('Job type') !== JOB_NONE)
    throw new DomainStateError(`another job is running on domain ${domain} (a backup or a migration?)`);
}

/**
 * Checkpoints of this catalog that no record of the domain names: left by a backup process that died
 * before it could record or delete them. Their bitmaps would record writes for nothing.
 */
async function deleteLeftoverCheckpoints(
  virsh: Virsh,
  store: ManifestStore,
  domain: string,
  log: Logger,
): Promise<void> {
  const named = new Set(store.records(domain).map((r) => r.checkpoint));
  for (const name of await listCheckpoints(virsh, domain)) {
    if (!name.startsWith(checkpointPrefix(store)) || named.has(name)) continue;
    log.warn('deleting a checkpoint no backup in the catalog names', { checkpoint: name });
    await virsh
      .run(['checkpoint-delete', domain, name])
      .catch((err: Error) => log.warn('could not delete it', { checkpoint: name, error: err.message }));
  }
}

function backupDocument(store: ManifestStore, planned: readonly PlannedDisk[]): string {
  const disks = planned.map((p) => {
    const mode =
      p.plan.kind === 'incremental'
        ? `backupmode='incremental' incremental='${escapeXml(p.plan.parent.checkpoint ?? '')}'`
        : `backupmode='full'`;
    return `    <disk name='${escapeXml(p.name)}' backup='yes' type='file' ${mode}><driver type='qcow2'/><target file='${escapeXml(store.pathOf(p))}'/></disk>`;
  });
  return `<domainbackup mode='push'>\n  <disks>\n${disks.join('\n')}\n  </disks>\n</domainbackup>\n`;
}

/** The checkpoint covers exactly the disks backed up; others are left out of it. */
function checkpointDocument(name: string, planned: readonly PlannedDisk[]): string {
  const disks = planned.map((p) => `    <disk name='${escapeXml(p.name)}' checkpoint='bitmap'/>`);
  return `<domaincheckpoint>\n  <name>${escapeXml(name)}</name>\n  <disks>\n${disks.join('\n')}\n  </disks>\n</domaincheckpoint>\n`;
}

/** Polls libvirt until the domain's job ended, reporting progress; aborting aborts the job. */
async function waitForJob(
  virsh: Virsh,
  domain: string,
  control: LibvirtCopyControl,
  o: Pick<LibvirtBackupOptions, 'signal' | 'onProgress' | 'pollIntervalMs' | 'log'>,
): Promise<JobEnd> {
  const pollMs = o.pollIntervalMs ?? 1000;
  let aborting = false;
  for (;;) {
    if (o.signal?.aborted && !aborting) {
      aborting = true;
      o.log.warn('aborting the backup job');
      await virsh
        .run(['domjobabort', domain])
        .catch((err: Error) => o.log.debug('domjobabort refused', { error: err.message }));
    }
    const running = parseFields(await virsh.run(['domjobinfo', domain, '--rawstats']), ':');
    if (running.get('Job type') === JOB_NONE) break;
    o.onProgress?.(await control.progress());
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  const done = parseFields(
    await virsh.run(['domjobinfo', domain, '--completed', '--keep-completed', '--rawstats']),
    ':',
  );
  if (done.get('operation') !== '9') return { status: 'unknown' };
  const type = done.get('Job type');
  if (type === JOB_COMPLETED) return { status: 'completed', bytes: Number(done.get('disk_total') ?? 0) };
  return { status: type === JOB_CANCELLED ? 'cancelled' : 'failed', error: done.get('errmsg') ?? 'no message' };
}

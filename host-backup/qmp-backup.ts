/**
 * One backup of a running QEMU's disks over QMP into a backup directory (the `qmp` driver,
 * hypervisor/qmp-driver.ts), without a token of its own: `headroomctl qmp-backup`, which
 * `host-backup --driver qmp` runs under a HYPERVISOR token as its command. Cancelling cancels the block
 * jobs, and the dirty bitmaps keep their bits for the next attempt. Asked to quiesce, it freezes the guest's
 * applications around the snapshot point itself, under the token host-backup runs it with, and tells
 * host-backup the consistency achieved through the file CONSISTENCY_FILE_ENV names.
 */
import * as fs from 'node:fs';
import { reportBytes } from '../common/backup-run/reported-bytes';
import type { Logger } from '../common/util/log';
import { CatalogError } from './catalog/chain-rules';
import { childCopyControl } from './copy-control-channel';
import { ManifestStore } from './catalog/manifest-store';
import { GuestQuiesce, type GuestQuiesceOptions } from './guest-quiesce';
import { type DiskSpec, discoverDisks } from './hypervisor/block-nodes';
import { QmpClient, QmpCommandError, QmpConnectionError } from './hypervisor/qmp-client';
import { type QmpBackupResult, backupVm } from './hypervisor/qmp-driver';
import { QemuImgError } from './qemu-img';

/** Where host-backup --driver qmp wants to be told the consistency achieved ("crash" or "application"). */
export const CONSISTENCY_FILE_ENV = 'HEADROOM_CONSISTENCY_FILE';

export interface QmpBackupRunOptions {
  /** The VM, as the catalog names it. */
  vm: string;
  /** The QEMU process's QMP unix socket. */
  socket: string;
  /** The backup directory, made a catalog on first use. */
  target: string;
  /** Absent: every drive or export QEMU shows. */
  disks?: DiskSpec[];
  /** A full backup even when an incremental would do. */
  forceFull: boolean;
  /** A full backup once a chain holds this many incrementals; absent: no limit. */
  maxIncrementals?: number;
  /** Limit on each disk's copying, bytes/s; absent: none. */
  speed?: number;
  /** The guest's quiesce around the snapshot point, under the run's token; absent: off. */
  quiesce?: GuestQuiesceOptions;
  /** Where to write the consistency achieved (host-backup's CONSISTENCY_FILE_ENV), if anyone asked. */
  consistencyFile?: string;
  /**
   * host-backup's copy control channel (its COPY_CONTROL_ENV), if it runs us: its budget and the load
   * controller's pauses reach the block jobs through it.
   */
  copyControlDir?: string;
  /** Where to write the bytes QEMU copied (the guarded run's BYTES_FILE_ENV), if anyone asked. */
  bytesFile?: string;
  /** Wall clock, Unix ms: names backups and times them. */
  now(): number;
  /** Aborting cancels the block jobs. */
  signal: AbortSignal;
  log: Logger;
  onProgress?(jobs: Array<{ disk: string; offset: number; len: number }>): void;
}

export interface QmpBackupOutcome {
  /**
   * done; failed (a disk's backup failed, or one of `failure`); cancelled through the signal; no-disks:
   * QEMU shows no drive or export, and none was named.
   */
  status: 'done' | 'failed' | 'cancelled' | 'no-disks';
  /** The backup's own result, when it ran. */
  result?: QmpBackupResult;
  /** Why it failed when no disk's result says it: the catalog, qemu-img or QMP failed, or a require quiesce did not hold. */
  failure?: string;
}

/** Backs the VM up once, as the module header says. */
export async function runQmpBackup(o: QmpBackupRunOptions): Promise<QmpBackupOutcome> {
  const quiesce = o.quiesce && o.quiesce.mode !== 'off' ? new GuestQuiesce(o.quiesce) : undefined;
  let client: QmpClient | undefined;
  try {
    const store = ManifestStore.open(o.target, { create: true });
    client = await QmpClient.connect(o.socket);
    const disks = o.disks ?? (await discoverDisks(client));
    if (disks.length === 0) {
      tellConsistency(o.consistencyFile, 'crash');
      return { status: 'no-disks' };
    }
    // The jobs start at the budget in force, so that not a chunk is copied above it.
    const copy = childCopyControl(o.copyControlDir, o.speed ?? 0, o.log);
    const result = await backupVm(client, {
      vm: o.vm,
      disks,
      store,
      forceFull: o.forceFull,
      maxIncrementals: o.maxIncrementals,
      speed: copy.startSpeed,
      onCopyStarted: copy.onCopyStarted,
      snapshotPoint: quiesce && {
        before: async () => {
          const refusal = await quiesce.freeze();
          if (refusal) throw new Error(refusal);
        },
        after: () => quiesce.thaw(),
      },
      now: o.now,
      signal: o.signal,
      log: o.log,
      onProgress: o.onProgress,
    });
    tellConsistency(o.consistencyFile, result.consistency);
    // QEMU wrote them, not our process tree: tell host-backup's release (common/backup-run/reported-bytes.ts).
    reportBytes(
      o.bytesFile,
      result.disks.reduce((sum, d) => sum + (d.record?.bytes ?? 0), 0),
    );
    if (!result.ok) return { status: o.signal.aborted ? 'cancelled' : 'failed', result };
    if (o.quiesce?.mode === 'require' && result.consistency !== 'application') {
      return {
        status: 'failed',
        result,
        failure: '--quiesce require, but the snapshot is only crash-consistent (kept in the catalog as such)',
      };
    }
    return { status: 'done', result };
  } catch (err) {
    tellConsistency(o.consistencyFile, 'crash');
    if (
      err instanceof CatalogError ||
      err instanceof QemuImgError ||
      err instanceof QmpCommandError ||
      err instanceof QmpConnectionError
    ) {
      return { status: 'failed', failure: err.message };
    }
    throw err;
  } finally {
    client?.close();
  }
}

/** Tells host-backup (when it asked) the consistency for the release outcome. */
function tellConsistency(file: string | undefined, consistency: 'crash' | 'application'): void {
  if (file) fs.writeFileSync(file, consistency);
}

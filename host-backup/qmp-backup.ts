/**
 * One backup of a running QEMU's disks over QMP into a backup directory (the `qmp` driver,
 * hypervisor/qmp-driver.ts), without a token of its own: `headroomctl qmp-backup`, which
 * `host-backup --driver qmp` runs under a HYPERVISOR token as its command. Cancelling cancels the block
 * jobs, and the dirty bitmaps keep their bits for the next attempt. Asked to quiesce, it freezes the guest's
 * applications around the snapshot point itself, under the token host-backup runs it with, and tells
 * host-backup the consistency achieved through the file CONSISTENCY_FILE_ENV names.
 */
import type { Logger } from '../common/util/log';
import { CatalogError } from './catalog/chain-rules';
import { ManifestStore } from './catalog/manifest-store';
import { childCopyControl } from './copy-control-channel';
import {
  type DriverRunOutcome,
  type DriverRunReporting,
  concludeRun,
  quiescePoint,
  runDriver,
  tellConsistency,
} from './driver-run';
import { type DiskSpec, discoverDisks } from './hypervisor/block-nodes';
import { QmpClient, QmpCommandError, QmpConnectionError } from './hypervisor/qmp-client';
import { backupVm } from './hypervisor/qmp-driver';
import { QemuImgError } from './qemu-img';

export { CONSISTENCY_FILE_ENV } from './driver-run';

export interface QmpBackupRunOptions extends DriverRunReporting {
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
  /** Wall clock, Unix ms: names backups and times them. */
  now(): number;
  log: Logger;
  onProgress?(jobs: Array<{ disk: string; offset: number; len: number }>): void;
}

export type QmpBackupOutcome = DriverRunOutcome;

/** Backs the VM up once, as the module header says. */
export async function runQmpBackup(o: QmpBackupRunOptions): Promise<QmpBackupOutcome> {
  let client: QmpClient | undefined;
  return runDriver(o, [CatalogError, QemuImgError, QmpCommandError, QmpConnectionError], async () => {
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
        snapshotPoint: quiescePoint(o.quiesce),
        now: o.now,
        signal: o.signal,
        log: o.log,
        onProgress: o.onProgress,
      });
      return concludeRun(o, result);
    } finally {
      client?.close();
    }
  });
}

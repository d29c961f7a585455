/**
 * What the hypervisor drivers' runs (qmp-backup.ts, libvirt-backup.ts) share around their backup: the
 * guest's quiesce as the snapshot point's bracket, and how a run ends — the consistency and the bytes
 * told to host-backup (which runs the backup as its command under a HYPERVISOR token), and the outcome,
 * failed when `--quiesce require` did not hold.
 */
import * as fs from 'node:fs';
import { reportBytes } from '../common/backup-run/reported-bytes';
import type { Consistency } from './catalog/chain-rules';
import { GuestQuiesce, type GuestQuiesceOptions } from './guest-quiesce';
import type { HypervisorBackupResult } from './hypervisor/backup-set';

/** Where host-backup --driver qmp|libvirt wants to be told the consistency achieved ("crash" or "application"). */
export const CONSISTENCY_FILE_ENV = 'HEADROOM_CONSISTENCY_FILE';

export interface DriverRunReporting {
  /** The guest's quiesce around the snapshot point, under the run's token; absent: off. */
  quiesce?: GuestQuiesceOptions;
  /** Where to write the consistency achieved (host-backup's CONSISTENCY_FILE_ENV), if anyone asked. */
  consistencyFile?: string;
  /** Where to write the bytes QEMU copied (the guarded run's BYTES_FILE_ENV), if anyone asked. */
  bytesFile?: string;
  /**
   * host-backup's copy control channel (its COPY_CONTROL_ENV), if it runs us: its budget and the load
   * controller's pauses reach the hypervisor's copy through it.
   */
  copyControlDir?: string;
  signal: AbortSignal;
}

export interface DriverRunOutcome {
  /**
   * done; failed (a disk's backup failed, or one of `failure`); cancelled through the signal; no-disks:
   * the hypervisor shows no disk to back up, and none was named.
   */
  status: 'done' | 'failed' | 'cancelled' | 'no-disks';
  /** The backup's own result, when it ran. */
  result?: HypervisorBackupResult;
  /** Why it failed when no disk's result says it: the catalog, qemu-img or the hypervisor failed, or a require quiesce did not hold. */
  failure?: string;
}

/** The guest's quiesce as a driver's snapshotPoint; undefined when off. */
export function quiescePoint(
  options: GuestQuiesceOptions | undefined,
): { before(): Promise<void>; after(): Promise<Consistency> } | undefined {
  if (!options || options.mode === 'off') return undefined;
  const quiesce = new GuestQuiesce(options);
  return {
    before: async () => {
      const refusal = await quiesce.freeze();
      if (refusal) throw new Error(refusal);
    },
    after: () => quiesce.thaw(),
  };
}

/** The run's outcome from the driver's result, told to host-backup. */
export function concludeRun(o: DriverRunReporting, result: HypervisorBackupResult): DriverRunOutcome {
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
}

/**
 * Runs a driver's backup: a failure of one of the `expected` kinds (the catalog, qemu-img, the hypervisor)
 * becomes a failed outcome saying why; anything else is a bug and is thrown. Either way host-backup is told
 * the snapshot is crash-consistent at best, unless `body` told it otherwise.
 */
export async function runDriver(
  o: Pick<DriverRunReporting, 'consistencyFile'>,
  expected: ReadonlyArray<abstract new (...args: never[]) => Error>,
  body: () => Promise<DriverRunOutcome>,
): Promise<DriverRunOutcome> {
  try {
    return await body();
  } catch (err) {
    tellConsistency(o.consistencyFile, 'crash');
    if (expected.some((kind) => err instanceof kind)) return { status: 'failed', failure: (err as Error).message };
    throw err;
  }
}

/** Tells host-backup (when it asked) the consistency for the release outcome. */
export function tellConsistency(file: string | undefined, consistency: Consistency): void {
  if (file) fs.writeFileSync(file, consistency);
}

/**
 * AdminService's snapshot calls: the catalog in coordinator.yaml's `backups.dir` (list, inspect, verify,
 * prune: catalog/catalog-view.ts) and the backups the coordinator runs itself (backup-runner.ts). Thin:
 * validation, the catalog's answers as wire messages, errors mapped in status.ts. Admin-only like every
 * AdminService call (pki/authorizer.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import type { BackupRunView, BackupRuns } from '../hypervisor-jobs/backup-runner';
import { CatalogError } from '../../host-backup/catalog/chain-rules';
import {
  findBackup,
  listBackups,
  pruneBackups,
  removedBy,
  verificationPlan,
  verifyBackups,
} from '../../host-backup/catalog/catalog-view';
import { ManifestStore } from '../../host-backup/catalog/manifest-store';
import { releaseCheckpoints } from '../../host-backup/hypervisor/libvirt-checkpoints';
import { BackupCatalogUnavailableError, BackupNotFoundError } from '../domain/errors';
import { resourceExhausted } from './call-guard';
import { stream, unary } from './handler';
import * as validate from './validate';
import * as wire from '../../host-backup/catalog/snapshot-wire';
import { backupRunState } from '../../proto/enums';
import type { VmResolver } from '../service/placement-monitor';
import type { BackupVerifications } from '../service/backup-verifications';
import type * as v1 from '../../proto/generated/headroom/v1';

/** Verifications at once: each reads whole files, and the host's disks are what backups must not swamp. */
const MAX_CONCURRENT_VERIFIES = 2;

export type SnapshotHandlers = Pick<
  v1.AdminServiceHandlers,
  'ListBackups' | 'GetBackup' | 'VerifyBackups' | 'PruneBackups' | 'StartBackup' | 'CancelBackup' | 'ListBackupRuns'
>;

export interface SnapshotServiceOptions {
  /** coordinator.yaml's backups.dir; undefined: not configured. */
  backupDir?: string;
  runner: BackupRuns;
  /** Resolves the VM a call names to its identity, which the runs are keyed by. */
  vms: Pick<VmResolver, 'resolve'>;
  /** Told each backup's verification (the dashboard's VM view shows the last). */
  verifications?: Pick<BackupVerifications, 'record'>;
  log: Logger;
}

function backupRunToWire(r: BackupRunView): v1.BackupRun__Output {
  return {
    runId: r.runId,
    vm: r.vm,
    job: r.job,
    state: backupRunState.toWire(r.state),
    startedUnixMs: r.startedAtMs,
    endedUnixMs: r.endedAtMs ?? 0,
    exitCode: r.exitCode ?? 0,
    message: r.message,
    argv: r.argv,
    outputTail: r.outputTail,
    cancelRequested: r.cancelRequested,
  };
}

export function snapshotService(o: SnapshotServiceOptions): SnapshotHandlers {
  const store = (): ManifestStore => {
    if (o.backupDir === undefined) {
      throw new BackupCatalogUnavailableError('no backup directory is configured: set backups.dir in coordinator.yaml');
    }
    try {
      return ManifestStore.open(o.backupDir);
    } catch (err) {
      if (err instanceof CatalogError) {
        throw new BackupCatalogUnavailableError(
          `${err.message}: backups.dir in coordinator.yaml names it; it becomes one with the first backup made into it (or is its storage not mounted?)`,
        );
      }
      throw err;
    }
  };
  let verifying = 0;

  return {
    ListBackups: unary(o.log, (req: v1.ListBackupsRequest__Output): v1.ListBackupsResponse => {
      const filter = validate.backupFilter(req);
      const limit = validate.limit('limit', req.limit, wire.MAX_LISTED_BACKUPS, wire.MAX_LISTED_BACKUPS);
      const s = store();
      const listing = listBackups(s, filter, limit);
      return {
        dir: s.dir,
        omitted: listing.omitted,
        backups: listing.backups.map(wire.backupInfo),
        problems: listing.problems.map(wire.catalogProblem),
        interrupted: listing.interrupted,
      };
    }),

    GetBackup: unary(o.log, (req: v1.GetBackupRequest__Output): v1.GetBackupResponse => {
      const id = validate.catalogName('id', req.id);
      const vm = req.vm === '' ? undefined : validate.catalogName('vm', req.vm);
      const found = findBackup(store(), id, vm);
      if (!found) throw new BackupNotFoundError(id);
      return {
        backup: wire.backupInfo(found.backup),
        chain: found.chain.map(wire.backupInfo),
        manifestJson: found.manifestText,
      };
    }),

    // Async: a verification's error (reading the files) is answered through the handler's status table too.
    VerifyBackups: stream(
      o.log,
      async (call: grpc.ServerWritableStream<v1.VerifyBackupsRequest__Output, v1.BackupVerification>) => {
        const filter = validate.backupFilter(call.request);
        const id = call.request.id === '' ? undefined : validate.catalogName('id', call.request.id);
        const s = store();
        const plan = verificationPlan(s, { ...filter, id });
        if (id !== undefined && plan.records.length === 0) throw new BackupNotFoundError(id);
        if (verifying >= MAX_CONCURRENT_VERIFIES) {
          call.emit(
            'error',
            resourceExhausted(`${MAX_CONCURRENT_VERIFIES} verifications are running already: try again when one ends`),
          );
          return;
        }
        verifying++;
        // A caller that goes away stops the reading between files.
        const abort = new AbortController();
        call.on('cancelled', () => abort.abort());
        const total = plan.problems.length + plan.records.length;
        let index = 0;
        try {
          for await (const v of verifyBackups(s, plan, abort.signal)) {
            if ('record' in v) o.verifications?.record(v.record.id, v.ok, v.problem);
            if (abort.signal.aborted) break;
            const more = call.write(wire.verification(v, ++index, total));
            // Wait for the reader, or for it to go away: either way the slot is given back below.
            if (!more)
              await new Promise<void>((resolve) => {
                call.once('drain', resolve);
                abort.signal.addEventListener('abort', () => resolve(), { once: true });
              });
          }
          call.end();
        } finally {
          verifying--;
        }
      },
    ),

    PruneBackups: unary(o.log, async (req: v1.PruneBackupsRequest__Output): Promise<v1.PruneBackupsResponse> => {
      const filter = validate.backupFilter(req);
      const result = pruneBackups(store(), filter, validate.prunePolicy(req), req.dryRun);
      if (!req.dryRun) await releaseCheckpoints(store(), removedBy(result), o.log);
      o.log.info('pruned backups', {
        dryRun: req.dryRun,
        removed: result.decisions.filter((d) => !d.keep).length,
        freedBytes: result.freedBytes,
      });
      return wire.pruneResponse(result, req.dryRun);
    }),

    StartBackup: unary(o.log, async (req: v1.StartBackupRequest__Output) =>
      backupRunToWire(
        await o.runner.start(o.vms.resolve('vm', validate.catalogName('vm', req.vm)), { full: req.full }),
      ),
    ),

    CancelBackup: unary(o.log, async (req: v1.CancelBackupRequest__Output) =>
      backupRunToWire(await o.runner.cancel(o.vms.resolve('vm', validate.catalogName('vm', req.vm)))),
    ),

    ListBackupRuns: unary(o.log, async (req: v1.ListBackupRunsRequest__Output) => ({
      runs: (
        await o.runner.list(req.vm === '' ? undefined : o.vms.resolve('vm', validate.catalogName('vm', req.vm)))
      ).map(backupRunToWire),
    })),
  };
}

/**
 * A backup directory on this machine, answering as the coordinator's AdminService snapshot calls do
 * (snapshot-wire.ts): list, show, verify and prune over catalog-view.ts. headroomctl's catalog commands
 * read either this or the coordinator, and print the same either way.
 */
import { findBackup, listBackups, pruneBackups, removedBy, verificationPlan, verifyBackups } from './catalog-view';
import { CatalogError } from './chain-rules';
import { ManifestStore } from './manifest-store';
import type { BackupRecord } from './chain-rules';
import type { RetentionPolicy } from './retention';
import * as wire from './snapshot-wire';
import type * as v1 from '../../proto/generated/headroom/v1';

/** Which VM and disk a catalog call narrows to; '' for all, as on the wire. */
export interface Filter {
  vm: string;
  disk: string;
}

/** A catalog, local or the coordinator's, answering with the AdminService's messages. */
export interface CatalogSource {
  /** For messages: the directory, or the coordinator. */
  readonly where: string;
  /** The newest `limit` backups (0: the coordinator's most). */
  list(filter: Filter, limit: number): Promise<v1.ListBackupsResponse__Output>;
  get(id: string, vm: string): Promise<v1.GetBackupResponse__Output>;
  /** Calls `each` with every result as it is known. */
  verify(request: Filter & { id: string }, each: (v: v1.BackupVerification__Output) => void): Promise<void>;
  prune(filter: Filter, policy: RetentionPolicy, dryRun: boolean): Promise<v1.PruneBackupsResponse__Output>;
}

const opt = (s: string) => (s === '' ? undefined : s);

/**
 * What a prune must also remove outside the catalog once backups went (the libvirt checkpoints they
 * created: hypervisor/libvirt-checkpoints.ts), kept out of the catalog, which the drivers write into.
 */
export type AfterPrune = (store: ManifestStore, removed: readonly BackupRecord[]) => Promise<unknown>;

/** The catalog in `dir`, opened on first use (so that --help and usage errors need no directory). */
export function localCatalog(dir: string, afterPrune?: AfterPrune): CatalogSource {
  let opened: ManifestStore | undefined;
  const store = () => (opened ??= ManifestStore.open(dir));
  return {
    where: dir,
    async list(f, limit) {
      const s = store();
      const l = listBackups(s, { vm: opt(f.vm), disk: opt(f.disk) }, limit || wire.MAX_LISTED_BACKUPS);
      return {
        dir: s.dir,
        omitted: l.omitted,
        backups: l.backups.map(wire.backupInfo),
        problems: l.problems.map(wire.catalogProblem),
        interrupted: l.interrupted,
      };
    },
    async get(id, vm) {
      const found = findBackup(store(), id, opt(vm));
      if (!found) throw new CatalogError(`no backup ${id} in ${store().dir}`);
      return {
        backup: wire.backupInfo(found.backup),
        chain: found.chain.map(wire.backupInfo),
        manifestJson: found.manifestText,
      };
    },
    async verify(r, each) {
      const plan = verificationPlan(store(), { vm: opt(r.vm), disk: opt(r.disk), id: opt(r.id) });
      if (r.id !== '' && plan.records.length === 0) throw new CatalogError(`no backup ${r.id} in ${store().dir}`);
      const total = plan.problems.length + plan.records.length;
      let index = 0;
      for await (const v of verifyBackups(store(), plan)) each(wire.verification(v, ++index, total));
    },
    async prune(f, policy, dryRun) {
      const result = pruneBackups(store(), { vm: opt(f.vm), disk: opt(f.disk) }, policy, dryRun);
      if (!dryRun) await afterPrune?.(store(), removedBy(result));
      return wire.pruneResponse(result, dryRun);
    },
  };
}

/**
 * Where headroomctl's catalog commands (backups, verify, prune, backup show) read: a backup directory on
 * this machine with `--dir DIR`, else the coordinator's (AdminService's snapshot calls, reached with
 * --coordinator). Both answer with the same wire messages (host-backup/catalog/snapshot-wire.ts), so a command prints
 * the same either way.
 */
import * as grpc from '@grpc/grpc-js';
import { findBackup, listBackups, pruneBackups, verificationPlan, verifyBackups } from '../host-backup/catalog/catalog-view';
import { CatalogError } from '../host-backup/catalog/chain-rules';
import { ManifestStore } from '../host-backup/catalog/manifest-store';
import type { RetentionPolicy } from '../host-backup/catalog/retention';
import * as wire from '../host-backup/catalog/snapshot-wire';
import type * as v1 from '../proto/generated/headroom/v1';
import { type OptionSpec, type ParsedArgs, parseString } from './args';
import type { Context } from './context';
import { toRpcError } from './errors';

export const DIR_OPTION: OptionSpec = {
  name: 'dir',
  value: 'DIR',
  help: 'read the backup directory DIR on this machine (default: ask the coordinator about its backups.dir)',
  parse: parseString,
};

/** Where a catalog command reads, and which VM and disk it narrows to. */
export const CATALOG_OPTIONS: OptionSpec[] = [
  DIR_OPTION,
  { name: 'vm', value: 'V', help: 'only this VM', parse: parseString },
  { name: 'disk', value: 'D', help: 'only this disk (with --vm)', parse: parseString },
];

/** The paragraph each catalog command's --help ends with. */
export const WHERE_HELP = [
  'With --dir DIR the command works on a backup directory this machine sees (local disk, NFS) and does not',
  'contact the coordinator. Without --dir it asks the coordinator (--coordinator host:port, admin identity)',
  "about the directory of its coordinator.yaml's backups.dir, from any machine.",
].join('\n');

export interface Filter {
  vm: string;
  disk: string;
}

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

function localSource(dir: string): CatalogSource {
  // Opened on first use, so that --help and usage errors need no directory.
  let opened: ManifestStore | undefined;
  const store = () => (opened ??= ManifestStore.open(dir));
  return {
    where: dir,
    async list(f, limit) {
      const s = store();
      const l = listBackups(s, { vm: opt(f.vm), disk: opt(f.disk) }, limit || wire.MAX_LISTED_BACKUPS);
      return { dir: s.dir, omitted: l.omitted, backups: l.backups.map(wire.backupInfo), problems: l.problems.map(wire.catalogProblem), interrupted: l.interrupted };
    },
    async get(id, vm) {
      const found = findBackup(store(), id, opt(vm));
      if (!found) throw new CatalogError(`no backup ${id} in ${store().dir}`);
      return { backup: wire.backupInfo(found.backup), chain: found.chain.map(wire.backupInfo), manifestJson: found.manifestText };
    },
    async verify(r, each) {
      const plan = verificationPlan(store(), { vm: opt(r.vm), disk: opt(r.disk), id: opt(r.id) });
      if (r.id !== '' && plan.records.length === 0) throw new CatalogError(`no backup ${r.id} in ${store().dir}`);
      const total = plan.problems.length + plan.records.length;
      let index = 0;
      for await (const v of verifyBackups(store(), plan)) each(wire.verification(v, ++index, total));
    },
    async prune(f, policy, dryRun) {
      return wire.pruneResponse(pruneBackups(store(), { vm: opt(f.vm), disk: opt(f.disk) }, policy, dryRun), dryRun);
    },
  };
}

function remoteSource(ctx: Context): CatalogSource {
  return {
    where: `the coordinator at ${ctx.coordinator}`,
    list: (f, limit) => ctx.admin('ListBackups', { ...f, limit }),
    get: async (id, vm) => (await ctx.admin('GetBackup', { id, vm })) as v1.GetBackupResponse__Output,
    prune: (f, policy, dryRun) => ctx.admin('PruneBackups', { ...f, ...policy, dryRun }),
    verify: (r, each) =>
      new Promise<void>((resolve, reject) => {
        // Verification reads every file: no deadline; the channel's keepalive notices a dead coordinator.
        const call = ctx.clients().admin.VerifyBackups(r);
        const stop = ctx.onInterrupt(() => call.cancel());
        call.on('data', each);
        call.on('error', (err: grpc.ServiceError) => {
          stop();
          reject(toRpcError('VerifyBackups', err));
        });
        call.on('end', () => {
          stop();
          resolve();
        });
      }),
  };
}

/** The source `--dir` chooses. */
export function catalogSource(ctx: Context, args: ParsedArgs): CatalogSource {
  const dir = args.get<string>('dir');
  return dir === undefined ? remoteSource(ctx) : localSource(dir);
}

/**
 * Where headroomctl's catalog commands (backups, verify, prune, backup show) read: a backup directory on
 * this machine with `--dir DIR` (host-backup/catalog/local-catalog.ts), else the coordinator's
 * (AdminService's snapshot calls, reached with --coordinator). Both answer with the same wire messages
 * (host-backup/catalog/snapshot-wire.ts), so a command prints the same either way.
 */
import * as grpc from '@grpc/grpc-js';
import { type CatalogSource, localCatalog } from '../host-backup/catalog/local-catalog';
import { releaseCheckpoints } from '../host-backup/hypervisor/libvirt-checkpoints';
import type * as v1 from '../proto/generated/headroom/v1';
import { type OptionSpec, type ParsedArgs, parseString } from '../common/util/cli-args';
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
  return dir === undefined
    ? remoteSource(ctx)
    : localCatalog(dir, (store, removed) => releaseCheckpoints(store, removed, ctx.log));
}

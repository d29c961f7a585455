/**
 * `headroomctl qmp-backup`: one backup of a running QEMU's disks over QMP into a backup directory (the
 * `qmp` driver, hypervisor/qmp-driver.ts), without a token. `host-backup --driver qmp` runs it under a
 * HYPERVISOR token as its command; SIGTERM (lease lost) or Ctrl-C cancels the block jobs, and the dirty
 * bitmaps keep their bits for the next attempt. With --quiesce it freezes the guest's applications around
 * the snapshot point itself, under the token host-backup gave it in its environment (common/token-env.ts),
 * and tells host-backup the consistency achieved through the file CONSISTENCY_FILE_ENV names.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TOKEN_ENV } from '../../common/backup-run/token-env';
import { CatalogError } from '../../host-backup/catalog/chain-rules';
import { ManifestStore } from '../../host-backup/catalog/manifest-store';
import { QemuImgError } from '../../host-backup/qemu-img';
import { QmpClient, QmpCommandError, QmpConnectionError } from '../../host-backup/hypervisor/qmp-client';
import { type DiskSpec, discoverDisks } from '../../host-backup/hypervisor/block-nodes';
import { backupVm } from '../../host-backup/hypervisor/qmp-driver';
import { type OptionSpec, type ParsedArgs, parseByteRate, parseString, parseUint32 } from '../args';
import type { Command } from '../command';
import { type Context, note, print, printJson } from '../context';
import { GuestQuiesce, QUIESCE_HELP, QUIESCE_OPTIONS, type QuiesceMode } from '../../host-backup/guest-quiesce';
import { EXIT_FAILURE, EXIT_TEMPFAIL } from '../../common/util/exit-codes';
import { UsageError } from '../../common/util/usage-error';
import { formatBytes, formatSpan } from '../human';

/** "disk0", or "name=node" when the catalog should call a QMP node or device something else. */
function parseDisks(raw: string): DiskSpec[] {
  return raw.split(',').map((part) => {
    const [name, node = name] = part.split('=');
    if (!name || !node) throw new Error(`expected NAME or NAME=NODE separated by commas, got "${raw}"`);
    return { name, node };
  });
}

/** The options qmp-backup takes, which host-backup --driver qmp passes through. */
export const QMP_BACKUP_OPTIONS: OptionSpec[] = [
  { name: 'qmp-socket', value: 'PATH', help: "the QEMU process's QMP unix socket", parse: parseString },
  { name: 'target', value: 'DIR', help: 'the backup directory (made a catalog on first use)', parse: parseString },
  { name: 'disk', value: 'LIST', help: 'disks, NAME or NAME=NODE, comma-separated (default: every drive / export)', parse: parseDisks },
  { name: 'full', help: 'make a full backup even when an incremental would do' },
  { name: 'max-incrementals', value: 'N', help: 'make a full backup once a chain holds N incrementals (default: no limit)', parse: parseUint32 },
  { name: 'speed', value: 'RATE', help: 'limit each disk\'s copying, bytes/s such as 50M (default: none)', parse: parseByteRate },
];

/** Where host-backup --driver qmp wants to be told the consistency achieved ("crash" or "application"). */
export const CONSISTENCY_FILE_ENV = 'HEADROOM_CONSISTENCY_FILE';

/** The connection options the child needs to call Quiesce/Thaw as host-backup does. */
const CONNECTION_OPTIONS = ['tls-ca', 'tls-cert', 'tls-key', 'pki-dir'];

/** The command line host-backup --driver qmp runs: this command, in a fresh headroomctl process. */
export function qmpBackupArgv(vm: string, args: ParsedArgs, coordinator: string): string[] {
  const argv = [process.execPath, path.join(__dirname, '..', 'main.js'), 'qmp-backup', '--vm', vm, '--coordinator', coordinator];
  for (const name of CONNECTION_OPTIONS) if (args.has(name)) argv.push(`--${name}`, String(args.get(name)));
  for (const o of [...QMP_BACKUP_OPTIONS, ...QUIESCE_OPTIONS]) {
    if (!args.has(o.name)) continue;
    if (!o.parse) argv.push(`--${o.name}`);
    else if (o.name === 'disk') argv.push('--disk', args.get<DiskSpec[]>('disk')!.map((d) => `${d.name}=${d.node}`).join(','));
    else argv.push(`--${o.name}`, String(args.get(o.name)));
  }
  return argv;
}

export const qmpBackupCommand: Command = {
  name: 'qmp-backup',
  summary: "back up a running QEMU's disks over QMP, full or incremental (no token; see host-backup --driver qmp)",
  synopsis: '--qmp-socket PATH --vm V --target DIR [--disk LIST] [--full] [--max-incrementals N] [--speed RATE] [--quiesce MODE] [--quiesce-hold DURATION]',
  description: [
    'Each disk gets a persistent dirty bitmap; the first backup is full, later ones copy only what changed,',
    'all disks in one QMP transaction (one point in time). The next backup is full, and says why, when the',
    'bitmap is missing or inconsistent (QEMU stopped uncleanly), the disk was resized, or a file of the',
    "chain is gone. Backups are qcow2 files with a JSON manifest each in DIR/VM/DISK; restore with",
    "'headroomctl restore' or qemu-img alone. Ctrl-C or SIGTERM cancels the jobs; the next run copies the",
    'same data again.',
    '',
    ...QUIESCE_HELP,
    'qmp-backup quiesces only under a token: run by host-backup --driver qmp, which passes it in the environment.',
    '',
    'Exit status: 0 done, 1 failed (also: --quiesce require and the guest was not quiesced), 75 cancelled.',
  ].join('\n'),
  options: [{ name: 'vm', value: 'V', help: 'the VM, as the catalog names it (required)', parse: parseString }, ...QMP_BACKUP_OPTIONS, ...QUIESCE_OPTIONS],
  async run(ctx, args) {
    const vm = args.require<string>('vm');
    const socket = args.require<string>('qmp-socket');
    const target = args.require<string>('target');
    const quiesce = guestQuiesce(ctx, args.get<QuiesceMode>('quiesce') ?? 'off', args.get<number>('quiesce-hold') ?? 0);
    const abort = new AbortController();
    const removeInterrupt = ctx.onInterrupt((signal) => {
      note(ctx, `${signal}: cancelling the backup jobs`);
      abort.abort();
    });
    let client: QmpClient | undefined;
    try {
      const store = ManifestStore.open(target, { create: true });
      client = await QmpClient.connect(socket);
      const disks = args.get<DiskSpec[]>('disk') ?? (await discoverDisks(client));
      if (disks.length === 0) throw new UsageError('QEMU shows no drive or export to back up: name the disks with --disk');
      let lastNote = 0;
      const result = await backupVm(client, {
        vm,
        disks,
        store,
        forceFull: args.flag('full'),
        maxIncrementals: args.get<number>('max-incrementals'),
        speed: args.get<number>('speed'),
        snapshotPoint: quiesce && {
          before: async () => {
            const refusal = await quiesce.freeze();
            if (refusal) throw new Error(refusal);
          },
          after: () => quiesce.thaw(),
        },
        now: ctx.now,
        signal: abort.signal,
        log: ctx.log,
        onProgress: (jobs) => {
          if (ctx.now() - lastNote < 5_000) return;
          lastNote = ctx.now();
          note(ctx, jobs.map((j) => `${j.disk} ${formatBytes(j.offset)} of ${formatBytes(j.len)}`).join(', '));
        },
      });
      if (ctx.json) printJson(ctx, result);
      else {
        for (const d of result.disks) {
          const r = d.record;
          if (r) print(ctx, `${r.disk}  ${r.kind.padEnd(11)}  ${formatBytes(r.bytes).padStart(9)} copied  ${formatSpan(r.durationMs).padStart(6)}  ${r.file}${r.fullReason ? `  (${r.fullReason})` : ''}`);
          else print(ctx, `${d.disk}  failed: ${d.error}`);
        }
      }
      tellConsistency(result.consistency);
      if (!result.ok) return abort.signal.aborted ? EXIT_TEMPFAIL : EXIT_FAILURE;
      note(ctx, `consistency: ${result.consistency}`);
      if (args.get<QuiesceMode>('quiesce') === 'require' && result.consistency !== 'application') {
        note(ctx, 'backup failed: --quiesce require, but the snapshot is only crash-consistent (kept in the catalog as such)');
        return EXIT_FAILURE;
      }
      return 0;
    } catch (err) {
      tellConsistency('crash');
      if (err instanceof CatalogError || err instanceof QemuImgError || err instanceof QmpCommandError || err instanceof QmpConnectionError) {
        note(ctx, `backup failed: ${err.message}`);
        return EXIT_FAILURE;
      }
      throw err;
    } finally {
      client?.close();
      removeInterrupt();
    }
  },
};

/** The quiesce of this run, under the token in our environment; undefined for --quiesce off. */
function guestQuiesce(ctx: Context, mode: QuiesceMode, holdMs: number): GuestQuiesce | undefined {
  if (mode === 'off') return undefined;
  const tokenId = process.env[TOKEN_ENV.tokenId];
  const fencing = Number(process.env[TOKEN_ENV.fencing]);
  if (!tokenId || !Number.isSafeInteger(fencing) || fencing < 1) {
    throw new UsageError(`--quiesce ${mode} needs the HYPERVISOR token the backup runs under: use host-backup --driver qmp`);
  }
  return new GuestQuiesce({ client: ctx.clients().token, token: { tokenId, fencing }, mode, holdMs, say: (_event, _data, text) => note(ctx, text) });
}

/** Tells host-backup (when it asked) the consistency for the release outcome. */
function tellConsistency(consistency: 'crash' | 'application'): void {
  const file = process.env[CONSISTENCY_FILE_ENV];
  if (file) fs.writeFileSync(file, consistency);
}

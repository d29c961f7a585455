/**
 * `headroomctl qmp-backup`: the command line of one QEMU backup over QMP (host-backup/qmp-backup.ts), without
 * a token. `host-backup --driver qmp` runs it under a HYPERVISOR token as its command; SIGTERM (lease lost)
 * or Ctrl-C cancels the block jobs. With --quiesce it quiesces under the token host-backup gave it in its
 * environment (common/backup-run/token-env.ts).
 */
import * as path from 'node:path';
import { TOKEN_ENV } from '../../common/backup-run/token-env';
import { parseByteRate } from '../../common/util/byte-rate';
import { formatBytes, formatSpan } from '../../common/util/human';
import {
  type GuestQuiesceOptions,
  type QuiesceMode,
  parseQuiesceHold,
  parseQuiesceMode,
} from '../../host-backup/guest-quiesce';
import type { DiskSpec } from '../../host-backup/hypervisor/block-nodes';
import { CONSISTENCY_FILE_ENV, type QmpBackupRunOptions, runQmpBackup } from '../../host-backup/qmp-backup';
import { COPY_CONTROL_ENV } from '../../host-backup/copy-control-channel';
import type { DriverRunOutcome } from '../../host-backup/driver-run';
import { BYTES_FILE_ENV } from '../../common/backup-run/reported-bytes';
import { type OptionSpec, type ParsedArgs, parseString, parseUint32 } from '../../common/util/cli-args';
import type { Command } from '../command';
import { type Context, note, print, printJson } from '../context';
import { EXIT_FAILURE, EXIT_TEMPFAIL } from '../../common/util/exit-codes';
import { UsageError } from '../../common/util/usage-error';

/** "disk0", or "name=node" when the catalog should call a QMP node or device something else. */
function parseDisks(raw: string): DiskSpec[] {
  return raw.split(',').map((part) => {
    const [name, node = name] = part.split('=');
    if (!name || !node) throw new Error(`expected NAME or NAME=NODE separated by commas, got "${raw}"`);
    return { name, node };
  });
}

/** The QMP socket: the option only the qmp driver takes. */
export const QMP_SOCKET_OPTION: OptionSpec = {
  name: 'qmp-socket',
  value: 'PATH',
  help: "the QEMU process's QMP unix socket",
  parse: parseString,
};

/** The options every hypervisor driver's backup command (qmp-backup, libvirt-backup) takes. */
export const BACKUP_SET_OPTIONS: OptionSpec[] = [
  { name: 'target', value: 'DIR', help: 'the backup directory (made a catalog on first use)', parse: parseString },
  {
    name: 'disk',
    value: 'LIST',
    help: 'disks, NAME or NAME=NODE, comma-separated (default: every drive / export)',
    parse: parseDisks,
  },
  { name: 'full', help: 'make a full backup even when an incremental would do' },
  {
    name: 'max-incrementals',
    value: 'N',
    help: 'make a full backup once a chain holds N incrementals (default: no limit)',
    parse: parseUint32,
  },
  {
    name: 'speed',
    value: 'RATE',
    help: "limit each disk's copying, bytes/s such as 50M (default: none)",
    parse: parseByteRate,
  },
];

/** The options qmp-backup takes, which host-backup --driver qmp passes through. */
export const QMP_BACKUP_OPTIONS: OptionSpec[] = [QMP_SOCKET_OPTION, ...BACKUP_SET_OPTIONS];

/** host-backup's and qmp-backup's options. */
export const QUIESCE_OPTIONS: OptionSpec[] = [
  {
    name: 'quiesce',
    value: 'MODE',
    help: "require, try or off (default): quiesce the guest's applications for the snapshot",
    parse: parseQuiesceMode,
  },
  {
    name: 'quiesce-hold',
    value: 'DURATION',
    help: "the freeze's bound: the guest thaws by itself after it (default: the agent's, 10s)",
    parse: parseQuiesceHold,
  },
];

/** The --help lines of --quiesce and --quiesce-hold, shared by host-backup and qmp-backup. */
export const QUIESCE_HELP = [
  "--quiesce asks the VM's headroom-agent to quiesce its applications for the snapshot: its hooks (fsfreeze,",
  'databases, scripts in its hooks directory) freeze them right before the snapshot point and thaw them right',
  'after it (with --driver qmp: around the QMP transaction that starts the block jobs; with a COMMAND: around',
  "the whole command). The agent thaws by itself once --quiesce-hold passes (default: the agent's",
  'quiesce.defaultHold, 10 s; capped by its quiesce.maxHold), counted from its first freeze hook, so a guest',
  'never stays frozen for a dead host or coordinator. Modes: require fails the backup when the guest',
  'cannot quiesce (the agent is not connected, a hook failed, no answer; the command does not run, exit 1, the',
  'token released with a failed outcome); try goes on crash-consistent and says so; off (the default) never',
  'asks. If the guest thawed by itself before the snapshot point, the backup is crash-consistent (and under',
  'require it fails). The consistency achieved ("crash" or "application") is printed, recorded in the',
  "token's history with the release, and with --driver qmp in each backup's manifest.",
];

/** The connection options the child needs to call Quiesce/Thaw as host-backup does. */
const CONNECTION_OPTIONS = ['tls-ca', 'tls-cert', 'tls-key', 'pki-dir'];

/** Progress on the block jobs at most this often. */
const PROGRESS_EVERY_MS = 5_000;

/**
 * The command line host-backup --driver qmp|libvirt runs: `command` (qmp-backup, libvirt-backup) with
 * the `options` of it that were given, in a fresh headroomctl process.
 */
export function driverBackupArgv(
  command: string,
  options: readonly OptionSpec[],
  vm: string,
  args: ParsedArgs,
  coordinator: string,
): string[] {
  const argv = [
    process.execPath,
    path.join(__dirname, '..', 'main.js'),
    command,
    '--vm',
    vm,
    '--coordinator',
    coordinator,
  ];
  for (const name of CONNECTION_OPTIONS) if (args.has(name)) argv.push(`--${name}`, String(args.get(name)));
  for (const o of [...options, ...QUIESCE_OPTIONS]) {
    if (!args.has(o.name)) continue;
    if (!o.parse) argv.push(`--${o.name}`);
    else if (o.name === 'disk')
      argv.push(
        '--disk',
        args
          .get<DiskSpec[]>('disk')!
          .map((d) => `${d.name}=${d.node}`)
          .join(','),
      );
    else argv.push(`--${o.name}`, String(args.get(o.name)));
  }
  return argv;
}

export const qmpBackupCommand: Command = {
  name: 'qmp-backup',
  examples: [
    'qmp-backup --qmp-socket /run/qemu/web1.qmp --vm web1 --target /var/backups/headroom',
    'qmp-backup --qmp-socket /run/qemu/web1.qmp --vm web1 --target /var/backups/headroom --full --quiesce try',
  ],
  summary: "back up a running QEMU's disks over QMP, full or incremental (no token; see host-backup --driver qmp)",
  synopsis:
    '--qmp-socket PATH --vm V --target DIR [--disk LIST] [--full] [--max-incrementals N] [--speed RATE] [--quiesce MODE] [--quiesce-hold DURATION]',
  description: [
    'Each disk gets a persistent dirty bitmap; the first backup is full, later ones copy only what changed,',
    'all disks in one QMP transaction (one point in time). The next backup is full, and says why, when the',
    'bitmap is missing or inconsistent (QEMU stopped uncleanly), the disk was resized, or a file of the',
    'chain is gone. Backups are qcow2 files with a JSON manifest each in DIR/VM/DISK; restore with',
    "'headroomctl restore' or qemu-img alone. Ctrl-C or SIGTERM cancels the jobs; the next run copies the",
    'same data again.',
    '',
    ...QUIESCE_HELP,
    'qmp-backup quiesces only under a token: run by host-backup --driver qmp, which passes it in the environment.',
    '',
    'Exit status: 0 done, 1 failed (also: --quiesce require and the guest was not quiesced), 75 cancelled.',
  ].join('\n'),
  options: [
    { name: 'vm', value: 'V', help: 'the VM, as the catalog names it (required)', parse: parseString },
    ...QMP_BACKUP_OPTIONS,
    ...QUIESCE_OPTIONS,
  ],
  async run(ctx, args) {
    const vm = args.require<string>('vm');
    const socket = args.require<string>('qmp-socket');
    return runDriverCommand(ctx, args, 'cancelling the backup jobs', async (common, say) => {
      const outcome = await runQmpBackup({
        ...common,
        vm,
        socket,
        disks: args.get<DiskSpec[]>('disk'),
        onProgress: (jobs) =>
          say(() => jobs.map((j) => `${j.disk} ${formatBytes(j.offset)} of ${formatBytes(j.len)}`).join(', ')),
      });
      if (outcome.status === 'no-disks')
        throw new UsageError('QEMU shows no drive or export to back up: name the disks with --disk');
      return outcome;
    });
  },
};

/** What every driver's run takes from its command line and environment (qmp-backup, libvirt-backup). */
type CommonRunOptions = Pick<
  QmpBackupRunOptions,
  | 'target'
  | 'forceFull'
  | 'maxIncrementals'
  | 'speed'
  | 'quiesce'
  | 'consistencyFile'
  | 'bytesFile'
  | 'copyControlDir'
  | 'now'
  | 'signal'
  | 'log'
>;

/**
 * Runs a driver's backup command: `body` gets the options every driver takes and a progress note (at most
 * every PROGRESS_EVERY_MS); Ctrl-C or SIGTERM aborts it, saying `cancelling`; the outcome is printed and
 * becomes the exit status.
 */
export async function runDriverCommand(
  ctx: Context,
  args: ParsedArgs,
  cancelling: string,
  body: (common: CommonRunOptions, say: (text: () => string) => void) => Promise<DriverRunOutcome>,
): Promise<number> {
  const target = args.require<string>('target');
  const quiesce = guestQuiesce(ctx, args.get<QuiesceMode>('quiesce') ?? 'off', args.get<number>('quiesce-hold') ?? 0);
  const abort = new AbortController();
  const removeInterrupt = ctx.onInterrupt((signal) => {
    note(ctx, `${signal}: ${cancelling}`);
    abort.abort();
  });
  let lastNote = 0;
  try {
    const outcome = await body(
      {
        target,
        forceFull: args.flag('full'),
        maxIncrementals: args.get<number>('max-incrementals'),
        speed: args.get<number>('speed'),
        quiesce,
        consistencyFile: process.env[CONSISTENCY_FILE_ENV],
        bytesFile: process.env[BYTES_FILE_ENV],
        copyControlDir: process.env[COPY_CONTROL_ENV],
        now: ctx.now,
        signal: abort.signal,
        log: ctx.log,
      },
      (text) => {
        if (ctx.now() - lastNote < PROGRESS_EVERY_MS) return;
        lastNote = ctx.now();
        note(ctx, text());
      },
    );
    return printOutcome(ctx, outcome);
  } finally {
    removeInterrupt();
  }
}

/** Prints a driver run's result (one line per disk, or JSON); answers the exit status. */
function printOutcome(ctx: Context, outcome: DriverRunOutcome): number {
  const result = outcome.result;
  if (result && ctx.json) printJson(ctx, result);
  else if (result) {
    for (const d of result.disks) {
      const r = d.record;
      if (r)
        print(
          ctx,
          `${r.disk}  ${r.kind.padEnd(11)}  ${formatBytes(r.bytes).padStart(9)} copied  ${formatSpan(r.durationMs).padStart(6)}  ${r.file}${r.fullReason ? `  (${r.fullReason})` : ''}`,
        );
      else print(ctx, `${d.disk}  failed: ${d.error}`);
    }
  }
  if (result?.ok) note(ctx, `consistency: ${result.consistency}`);
  if (outcome.failure) note(ctx, `backup failed: ${outcome.failure}`);
  return outcome.status === 'done' ? 0 : outcome.status === 'cancelled' ? EXIT_TEMPFAIL : EXIT_FAILURE;
}

/** The quiesce of this run, under the token in our environment; undefined for --quiesce off. */
function guestQuiesce(ctx: Context, mode: QuiesceMode, holdMs: number): GuestQuiesceOptions | undefined {
  if (mode === 'off') return undefined;
  const tokenId = process.env[TOKEN_ENV.tokenId];
  const fencing = Number(process.env[TOKEN_ENV.fencing]);
  if (!tokenId || !Number.isSafeInteger(fencing) || fencing < 1) {
    throw new UsageError(
      `--quiesce ${mode} needs the HYPERVISOR token the backup runs under: use host-backup --driver qmp or libvirt`,
    );
  }
  return {
    client: ctx.clients().token,
    token: { tokenId, fencing },
    mode,
    holdMs,
    say: (_event, _data, text) => note(ctx, text),
  };
}

/**
 * `headroomctl host-backup`: the command line of a hypervisor-level backup under a HYPERVISOR token
 * (host-backup/run-host-backup.ts). Exits with the command's code, or 75 when no token could be had
 * (denied, lease lost, coordinator unreachable until the window closed). Progress goes to stderr, one
 * line per event (one JSON object with --json). Also the adapters that give the host-side runner
 * headroomctl's connection and output, which hold uses too.
 */
import { DEFAULT_KILL_GRACE_MS } from '../../common/backup-run/child-process';
import type { StopReason } from '../../common/backup-run/guarded-run';
import { parseByteRate } from '../../common/util/byte-rate';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { LIMITS } from '../../coordinator/domain/policy';
import type { CoordinatorLink } from '../../host-backup/coordinator-link';
import type { QuiesceMode } from '../../host-backup/guest-quiesce';
import type { Emit } from '../../host-backup/progress';
import { runHostBackup } from '../../host-backup/run-host-backup';
import { parseInt32, parsePositiveInt, parseString } from '../../common/util/cli-args';
import type { Command } from '../command';
import { type Context, note } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { withIsoTimes } from '../../common/util/json-times';
import { LIBVIRT_BACKUP_OPTIONS, LIBVIRT_URI_OPTION } from './libvirt-backup';
import {
  BACKUP_SET_OPTIONS,
  QMP_BACKUP_OPTIONS,
  QMP_SOCKET_OPTION,
  QUIESCE_HELP,
  QUIESCE_OPTIONS,
  driverBackupArgv,
} from './qmp-backup';

/** The job name recorded with the token when --job is not given. */
export const DEFAULT_JOB = 'host-backup';

type Driver = 'command' | 'qmp' | 'libvirt';

function parseDriver(raw: string): Driver {
  if (raw !== 'command' && raw !== 'qmp' && raw !== 'libvirt')
    throw new Error(`expected command, qmp or libvirt, got "${raw}"`);
  return raw;
}

/** The backup command each driver runs, and its options host-backup passes through. */
const DRIVER_COMMANDS = {
  qmp: { command: 'qmp-backup', options: QMP_BACKUP_OPTIONS },
  libvirt: { command: 'libvirt-backup', options: LIBVIRT_BACKUP_OPTIONS },
};

/** The options only some drivers take. */
const DRIVER_OPTIONS = [QMP_SOCKET_OPTION, LIBVIRT_URI_OPTION, ...BACKUP_SET_OPTIONS];

function parseDurationMs(raw: string): number {
  const ms = parseFlagDuration(raw);
  if (ms > 0xffff_ffff) throw new Error(`${raw} is too long (at most ${formatDuration(0xffff_ffff)})`);
  return ms;
}

/** A share of one core, 1 % up to what a budget may be (LIMITS.maxCpuBudgetPercent). */
function parseCpuLimit(raw: string): number {
  const percent = parsePositiveInt(raw);
  if (percent > LIMITS.maxCpuBudgetPercent)
    throw new Error(`${raw} is too large (at most ${LIMITS.maxCpuBudgetPercent}, 1,024 cores)`);
  return percent;
}

/** A rate above 0: a limit of nothing would stop the command, which is what a pause is for. */
function parseIoLimit(raw: string): number {
  const rate = parseByteRate(raw);
  if (rate === 0) throw new Error('expected a rate above 0');
  return rate;
}

export const hostBackupCommand: Command = {
  name: 'host-backup',
  examples: [
    'host-backup --host pve1 --vm 101 --window 1h -- vzdump 101 --mode snapshot',
    'host-backup --host pve1 --vm web1 --driver qmp --qmp-socket /run/qemu/web1.qmp --target /var/backups/headroom',
    'host-backup --host kvm1 --vm web1 --driver libvirt --target /var/backups/headroom --quiesce try',
  ],
  summary: 'run a hypervisor-level backup command under a HYPERVISOR token',
  synopsis:
    '--host H --vm V [--job NAME] [--window DURATION] [--expected-duration DURATION] [--priority N] [--ttl DURATION] [--shared-target NAME] [--kill-grace DURATION] ' +
    '[--cpu-limit PERCENT] [--io-limit RATE] [--quiesce require|try|off] [--quiesce-hold DURATION] ' +
    '{-- COMMAND [ARG...] | --driver qmp --qmp-socket PATH --target DIR [--disk LIST] [--full] [--max-incrementals N] [--speed RATE]' +
    ' | --driver libvirt [--libvirt-uri URI] --target DIR [--disk LIST] [--full] [--max-incrementals N] [--speed RATE]}',
  description: [
    'Waits for a HYPERVISOR token on the host (no guest backup may hold one meanwhile), runs COMMAND with',
    'this terminal, renews the token while it runs, and releases it with the outcome. COMMAND is run',
    "directly, not through a shell: write sh -c '...' for pipes. If the token is lost the command is stopped.",
    '',
    '--window is the backup window from now: the command must start within it, and is stopped at its end',
    "unless the host's policy allows overrun. Without --window it waits as long as it takes and may run",
    'as long as it needs. Ctrl-C while waiting withdraws the request; while running, it goes to the command.',
    '',
    "The command and everything it starts are held to a budget: the token's (the host's hypervisor budget),",
    'capped by --cpu-limit and --io-limit, with cgroup v2 (cpu.max, io.max, cgroup.freeze) where this host',
    'offers it, else cgroup v1 (cpu, blkio, freezer), else nice/ionice and SIGSTOP/SIGCONT duty cycling; the',
    "mechanism in force, and why no better one, is printed when the command starts. While it runs, the host's",
    "load is sampled at the policy's report interval, the command's own share taken out: as the host's",
    "foreground load crosses the policy's thresholds (headroomctl policy set), the command is throttled to",
    'the throttled budget, paused (frozen or SIGSTOPped; its token kept) and resumed, as the coordinator does',
    'for guest backups. Each change is printed with its time and reason. If the policy cannot be read, the',
    'command keeps its budget and is not throttled or paused by load. With --driver qmp the copying is done',
    "by QEMU, outside the command's process tree: the budget's I/O rate becomes QEMU's job speed",
    '(block-job-set-speed, never above --speed) and a pause pauses the jobs (block-job-pause; qmp-backup itself',
    'is not frozen, since it carries the pause and the resume to QEMU); each is printed ("copy limited to …',
    'by QEMU\'s job speed", "copy paused by the load controller …"). The same holds for --driver libvirt.',
    '',
    'With --driver qmp there is no COMMAND: the backup is `headroomctl qmp-backup` with the qmp options below',
    '(full or incremental QEMU backups into --target over the QMP socket; see qmp-backup --help). With',
    '--driver libvirt it is `headroomctl libvirt-backup`: --vm names the libvirt domain (name or UUID), backed',
    "up through libvirt's backup API with checkpoints into --target (see libvirt-backup --help and",
    "docs/libvirt.md); its copy's rate is the budget's, at most --speed, set through libvirt on QEMU's jobs.",
    '',
    ...QUIESCE_HELP,
    '',
    "Exit status: the command's own; 75 when no token was granted (denied, or not granted within --window,",
    'e.g. because the coordinator was unreachable) or the token was revoked or lost; 1 when --quiesce require',
    'could not quiesce the guest (the command did not run) or the guest thawed before the snapshot point;',
    '78 when the coordinator refuses until a setting changes (TLS or identity: the message names it); 64',
    'usage error.',
  ].join('\n'),
  options: [
    { name: 'host', value: 'H', help: 'the host the VM runs on (required)', parse: parseString },
    { name: 'vm', value: 'V', help: 'the VM being backed up (required)', parse: parseString },
    { name: 'job', value: 'NAME', help: `job name for history (default: ${DEFAULT_JOB})`, parse: parseString },
    {
      name: 'window',
      value: 'DURATION',
      help: 'backup window from now: start within it or exit 75 (default: none)',
      parse: parseDurationMs,
    },
    {
      name: 'expected-duration',
      value: 'DURATION',
      help: 'how long the backup usually takes (for estimates)',
      parse: parseDurationMs,
    },
    {
      name: 'priority',
      value: 'N',
      help: 'higher goes first among waiting HYPERVISOR requests (default 0)',
      parse: parseInt32,
    },
    { name: 'ttl', value: 'DURATION', help: "lease TTL (default: the host policy's)", parse: parseDurationMs },
    {
      name: 'shared-target',
      value: 'NAME',
      help: "the shared target it writes to (coordinator.yaml's targets): waits for room there on every host",
      parse: parseString,
    },
    {
      name: 'kill-grace',
      value: 'DURATION',
      help: `between SIGTERM and SIGKILL when the command must stop (default ${formatDuration(DEFAULT_KILL_GRACE_MS)})`,
      parse: parseDurationMs,
    },
    {
      name: 'cpu-limit',
      value: 'PERCENT',
      help: "CPU budget at most this, in % of one core (150: 1.5 cores; default: the token's)",
      parse: parseCpuLimit,
    },
    {
      name: 'io-limit',
      value: 'RATE',
      help: "storage I/O budget at most this, reads and writes each (10MiB; default: the token's)",
      parse: parseIoLimit,
    },
    {
      name: 'driver',
      value: 'NAME',
      help: 'command (default: run COMMAND), qmp (back up a QEMU over QMP) or libvirt (a libvirt domain)',
      parse: parseDriver,
    },
    ...DRIVER_OPTIONS,
    ...QUIESCE_OPTIONS,
  ],
  rest: true,
  async run(ctx, args) {
    const host = args.require<string>('host');
    const vm = args.require<string>('vm');
    let argv = args.rest ?? [];
    const driver = args.get<Driver>('driver') ?? 'command';
    if (driver === 'command') {
      const stray = DRIVER_OPTIONS.find((o) => args.has(o.name));
      if (stray) {
        const drivers = (Object.keys(DRIVER_COMMANDS) as Array<keyof typeof DRIVER_COMMANDS>).filter((d) =>
          DRIVER_COMMANDS[d].options.includes(stray),
        );
        throw new UsageError(`--${stray.name} needs --driver ${drivers.join(' or ')}`);
      }
      if (argv.length === 0 || argv[0] === '') throw new UsageError('missing the command to run: put it after "--"');
    } else {
      if (argv.length) throw new UsageError(`--driver ${driver} runs the backup itself: give no command after "--"`);
      const { command, options } = DRIVER_COMMANDS[driver];
      const stray = DRIVER_OPTIONS.find((o) => args.has(o.name) && !options.includes(o));
      if (stray) throw new UsageError(`--${stray.name} does not go with --driver ${driver}`);
      if (driver === 'qmp') args.require<string>('qmp-socket');
      args.require<string>('target');
      argv = driverBackupArgv(command, options, vm, args, ctx.coordinator);
    }
    if (args.has('quiesce-hold') && (args.get<QuiesceMode>('quiesce') ?? 'off') === 'off') {
      throw new UsageError('--quiesce-hold needs --quiesce require or try');
    }
    const killGraceMs = args.get<number>('kill-grace') ?? DEFAULT_KILL_GRACE_MS;
    const abort = new AbortController();
    const removeInterrupt = ctx.onInterrupt((signal) => {
      if (!abort.signal.aborted) {
        abort.abort({ kind: 'signal', signal } satisfies StopReason);
        return;
      }
      // The first signal went to the command (or withdrew the request); the grace period bounds the rest.
      note(
        ctx,
        `${signal} again: already stopping; the command gets SIGKILL ${formatDuration(killGraceMs)} after the first signal`,
      );
    });
    try {
      const result = await runHostBackup({
        host,
        vm,
        job: args.get<string>('job') ?? DEFAULT_JOB,
        argv,
        driver,
        windowMs: args.get<number>('window'),
        expectedDurationMs: args.get<number>('expected-duration') ?? 0,
        priority: args.get<number>('priority') ?? 0,
        ttlMs: args.get<number>('ttl') ?? 0,
        sharedTarget: args.get<string>('shared-target') ?? '',
        killGraceMs,
        limits: { cpuPercent: args.get<number>('cpu-limit') ?? 0, ioBytesPerSec: args.get<number>('io-limit') ?? 0 },
        quiesce: args.get<QuiesceMode>('quiesce') ?? 'off',
        quiesceHoldMs: args.get<number>('quiesce-hold') ?? 0,
        link: coordinatorLink(ctx),
        log: ctx.log,
        now: ctx.now,
        signal: abort.signal,
        emit: progressOutput(ctx),
      });
      return result.exitCode;
    } finally {
      removeInterrupt();
    }
  },
};

/** The host-side runner's way to the coordinator: this command's connection, its calls named in failures. */
export function coordinatorLink(ctx: Context): CoordinatorLink {
  return {
    address: ctx.coordinator,
    connection: ctx.connection,
    token: () => ctx.clients().token,
    admin: () => ctx.clients().admin,
    getPolicy: (host) => ctx.admin('GetPolicy', { host }),
    listHistory: (request) => ctx.admin('ListHistory', request),
  };
}

/** The host-side runner's events on stderr: `headroomctl: <text>`, or with --json the event and its data as a JSON object. */
export function progressOutput(ctx: Context): Emit {
  return (event, data, text) => {
    if (ctx.json) ctx.io.stderr(`${JSON.stringify(withIsoTimes({ event, ...data }))}\n`);
    else note(ctx, text);
  };
}

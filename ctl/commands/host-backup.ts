/**
 * `headroomctl host-backup`: runs a hypervisor-level backup command (vzdump, virsh, qemu-img …) under a
 * HYPERVISOR token, through the guarded run the agent uses too (common/guarded-run.ts): acquire → run →
 * renew → release, the command stopped if the lease is lost. The command's stdio is ours; progress goes
 * to stderr. Exits with the command's code, or 75 when no token could be had (denied, lease lost,
 * coordinator unreachable until the window closed). The command is held to a budget, throttled and paused
 * by the host's load as a guest backup is by its VM's (../host-budget.ts). With --quiesce the guest's
 * applications are frozen around the snapshot point (../guest-quiesce.ts): around the command, or, with
 * --driver qmp, by qmp-backup around its QMP transaction, which reports back the consistency achieved.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectEnforcement } from '../../common/backup-run/budget/detect';
import { DEFAULT_KILL_GRACE_MS } from '../../common/backup-run/child-process';
import { systemClock } from '../../common/util/clock';
import { formatDuration, parseDuration } from '../../common/util/duration';
import {
  type GuardedRunHooks,
  type GuardedRunResult,
  type RunBracket,
  type StopReason,
  runGuarded,
} from '../../common/backup-run/guarded-run';
import type { TokenClient } from '../../common/client/connection';
import { denyReason } from '../../proto/enums';
import type { Queued__Output, Token__Output } from '../../proto/generated/headroom/v1';
import { LIMITS } from '../../coordinator/domain/policy';
import { parseByteRate, parseInt32, parsePositiveInt, parseString } from '../args';
import type { Command } from '../command';
import { type Context, note } from '../context';
import { UsageError, statusName } from '../errors';
import { HostBudget } from '../../host-backup/host-budget';
import { GuestQuiesce, QUIESCE_HELP, QUIESCE_OPTIONS, type QuiesceMode } from '../../host-backup/guest-quiesce';
import { wireConsistency } from '../../host-backup/catalog/snapshot-wire';
import { formatClock, formatClockRelative, formatCommand, formatSpan } from '../human';
import { CONSISTENCY_FILE_ENV, QMP_BACKUP_OPTIONS, qmpBackupArgv } from './qmp-backup';
import { watchRevocation } from '../../host-backup/revoke-watch';

/** The job name recorded with the token when --job is not given. */
export const DEFAULT_JOB = 'host-backup';

/** While the coordinator stays unreachable, repeat the notice at most this often. */
const UNREACHABLE_NOTICE_EVERY_MS = 30_000;

function parseDriver(raw: string): 'command' | 'qmp' {
  if (raw !== 'command' && raw !== 'qmp') throw new Error(`expected command or qmp, got "${raw}"`);
  return raw;
}

function parseDurationMs(raw: string): number {
  const ms = parseDuration(raw);
  if (ms > 0xffff_ffff) throw new Error(`${raw} is too long (at most ${formatDuration(0xffff_ffff)})`);
  return ms;
}

/** A share of one core, 1 % up to what a budget may be (LIMITS.maxCpuBudgetPercent). */
function parseCpuLimit(raw: string): number {
  const percent = parsePositiveInt(raw);
  if (percent > LIMITS.maxCpuBudgetPercent) throw new Error(`${raw} is too large (at most ${LIMITS.maxCpuBudgetPercent}, 1,024 cores)`);
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
  summary: 'run a hypervisor-level backup command under a HYPERVISOR token',
  synopsis:
    '--host H --vm V [--job NAME] [--window DURATION] [--expected-duration DURATION] [--priority N] [--ttl DURATION] [--kill-grace DURATION] ' +
    '[--cpu-limit PERCENT] [--io-limit RATE] [--quiesce require|try|off] [--quiesce-hold DURATION] ' +
    '{-- COMMAND [ARG...] | --driver qmp --qmp-socket PATH --target DIR [--disk LIST] [--full] [--max-incrementals N] [--speed RATE]}',
  description: [
    'Waits for a HYPERVISOR token on the host (no guest backup may hold one meanwhile), runs COMMAND with',
    'this terminal, renews the token while it runs, and releases it with the outcome. COMMAND is run',
    'directly, not through a shell: write sh -c \'...\' for pipes. If the token is lost the command is stopped.',
    '',
    '--window is the backup window from now: the command must start within it, and is stopped at its end',
    'unless the host\'s policy allows overrun. Without --window it waits as long as it takes and may run',
    'as long as it needs. Ctrl-C while waiting withdraws the request; while running, it goes to the command.',
    '',
    'The command and everything it starts are held to a budget: the token\'s (the host\'s hypervisor budget),',
    'capped by --cpu-limit and --io-limit, with cgroup v2 (cpu.max, io.max, cgroup.freeze) where this host',
    'offers it, else cgroup v1 (cpu, blkio, freezer), else nice/ionice and SIGSTOP/SIGCONT duty cycling; the',
    'mechanism in force, and why no better one, is printed when the command starts. While it runs, the host\'s',
    'load is sampled at the policy\'s report interval, the command\'s own share taken out: as the host\'s',
    'foreground load crosses the policy\'s thresholds (headroomctl policy set), the command is throttled to',
    'the throttled budget, paused (frozen or SIGSTOPped; its token kept) and resumed, as the coordinator does',
    'for guest backups. Each change is printed with its time and reason. If the policy cannot be read, the',
    'command keeps its budget and is not throttled or paused by load. With --driver qmp the copying is done',
    'by QEMU, outside the command\'s process tree: its rate is --speed, and a pause holds only qmp-backup.',
    '',
    'With --driver qmp there is no COMMAND: the backup is `headroomctl qmp-backup` with the qmp options below',
    '(full or incremental QEMU backups into --target over the QMP socket; see qmp-backup --help).',
    '',
    ...QUIESCE_HELP,
    '',
    'Exit status: the command\'s own; 75 when no token was granted (denied, or not granted within --window,',
    'e.g. because the coordinator was unreachable) or the token was revoked or lost; 1 when --quiesce require',
    'could not quiesce the guest (the command did not run) or the guest thawed before the snapshot point;',
    '64 usage error.',
  ].join('\n'),
  options: [
    { name: 'host', value: 'H', help: 'the host the VM runs on (required)', parse: parseString },
    { name: 'vm', value: 'V', help: 'the VM being backed up (required)', parse: parseString },
    { name: 'job', value: 'NAME', help: `job name for history (default: ${DEFAULT_JOB})`, parse: parseString },
    { name: 'window', value: 'DURATION', help: 'backup window from now: start within it or exit 75 (default: none)', parse: parseDurationMs },
    { name: 'expected-duration', value: 'DURATION', help: 'how long the backup usually takes (for estimates)', parse: parseDurationMs },
    { name: 'priority', value: 'N', help: 'higher goes first among waiting HYPERVISOR requests (default 0)', parse: parseInt32 },
    { name: 'ttl', value: 'DURATION', help: "lease TTL (default: the host policy's)", parse: parseDurationMs },
    {
      name: 'kill-grace',
      value: 'DURATION',
      help: `between SIGTERM and SIGKILL when the command must stop (default ${formatDuration(DEFAULT_KILL_GRACE_MS)})`,
      parse: parseDurationMs,
    },
    { name: 'cpu-limit', value: 'PERCENT', help: "CPU budget at most this, in % of one core (150: 1.5 cores; default: the token's)", parse: parseCpuLimit },
    { name: 'io-limit', value: 'RATE', help: "storage I/O budget at most this, reads and writes each (10MiB; default: the token's)", parse: parseIoLimit },
    { name: 'driver', value: 'NAME', help: 'command (default: run COMMAND) or qmp (back up a QEMU over QMP)', parse: parseDriver },
    ...QMP_BACKUP_OPTIONS,
    ...QUIESCE_OPTIONS,
  ],
  rest: true,
  async run(ctx, args) {
    const host = args.require<string>('host');
    const vm = args.require<string>('vm');
    let argv = args.rest ?? [];
    if (args.get<string>('driver') === 'qmp') {
      if (argv.length) throw new UsageError('--driver qmp runs the backup itself: give no command after "--"');
      args.require<string>('qmp-socket');
      args.require<string>('target');
      argv = qmpBackupArgv(vm, args, ctx.coordinator);
    } else {
      const stray = QMP_BACKUP_OPTIONS.find((o) => args.has(o.name));
      if (stray) throw new UsageError(`--${stray.name} needs --driver qmp`);
      if (argv.length === 0 || argv[0] === '') throw new UsageError('missing the command to run: put it after "--"');
    }
    if (args.has('quiesce-hold') && (args.get<QuiesceMode>('quiesce') ?? 'off') === 'off') {
      throw new UsageError('--quiesce-hold needs --quiesce require or try');
    }
    const job = args.get<string>('job') ?? DEFAULT_JOB;
    const windowMs = args.get<number>('window');

    // The guarded run measures lease deadlines on the monotonic clock, which reads like Unix ms.
    const clock = systemClock;
    // As `headroom-agent exec` does: the window bounds both the start and the run.
    const windowEndUnixMs = windowMs === undefined ? 0 : clock.now() + windowMs;

    const abort = new AbortController();
    const killGraceMs = args.get<number>('kill-grace') ?? DEFAULT_KILL_GRACE_MS;
    const removeInterrupt = ctx.onInterrupt((signal) => {
      if (!abort.signal.aborted) {
        abort.abort({ kind: 'signal', signal } satisfies StopReason);
        return;
      }
      // The first signal went to the command (or withdrew the request); the grace period bounds the rest.
      note(ctx, `${signal} again: already stopping; the command gets SIGKILL ${formatDuration(killGraceMs)} after the first signal`);
    });
    const reporter = new ProgressReporter(ctx, { host, vm, job });
    const control = new HostBudget({
      host,
      mechanism: detectEnforcement({ mode: 'auto', log: ctx.log }),
      limits: { cpuPercent: args.get<number>('cpu-limit') ?? 0, ioBytesPerSec: args.get<number>('io-limit') ?? 0 },
      fetchPolicy: () => ctx.admin('GetPolicy', { host }),
      clock,
      now: () => ctx.now(),
      formatTime: (unixMs) => formatClock(unixMs, ctx.now()),
      log: ctx.log,
      emit: (event, data, text) => reporter.emit(event, data, text),
    });
    let stopWatching = () => {};
    const hooks = reporter.hooks(argv);
    const qmp = args.get<string>('driver') === 'qmp';
    const quiesce = args.get<QuiesceMode>('quiesce') ?? 'off';
    const consistencyDir = qmp ? fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-consistency-')) : undefined;
    const bracket = consistencyDir
      ? consistencyFromChild(path.join(consistencyDir, 'consistency'))
      : quiesce === 'off'
        ? undefined
        : quiesceAround(ctx.clients().token, quiesce, args.get<number>('quiesce-hold') ?? 0, reporter);
    try {
      const result = await runGuarded({
        client: ctx.clients().token,
        request: {
          kind: 'TOKEN_KIND_HYPERVISOR',
          host,
          vm,
          job,
          expectedDurationMs: args.get<number>('expected-duration') ?? 0,
          latestStartUnixMs: windowEndUnixMs,
          windowEndUnixMs,
          priority: args.get<number>('priority') ?? 0,
          ttlMs: args.get<number>('ttl') ?? 0,
        },
        argv,
        env: consistencyDir ? { ...process.env, [CONSISTENCY_FILE_ENV]: path.join(consistencyDir, 'consistency') } : undefined,
        bracket,
        stdio: 'inherit',
        log: ctx.log,
        clock,
        signal: abort.signal,
        killGraceMs,
        onUnreachable: 'skip',
        control,
        hooks: {
          ...hooks,
          onGranted(token) {
            hooks.onGranted?.(token);
            stopWatching = watchRevocation(ctx, token, (detail) => {
              if (!abort.signal.aborted) abort.abort({ kind: 'revoke', reason: detail } satisfies StopReason);
            });
          },
        },
      });
      reporter.finished(result);
      return result.exitCode;
    } finally {
      stopWatching();
      removeInterrupt();
      if (consistencyDir) fs.rmSync(consistencyDir, { recursive: true, force: true });
    }
  },
};

/** --quiesce around a COMMAND: the guest is frozen for the whole command, the snapshot taken somewhere in it. */
function quiesceAround(client: TokenClient, mode: QuiesceMode, holdMs: number, reporter: ProgressReporter): RunBracket {
  let guest: GuestQuiesce | undefined;
  return {
    before: (token) => {
      guest = new GuestQuiesce({ client, token, mode, holdMs, say: (event, data, text) => reporter.emit(event, data, text) });
      return guest.freeze();
    },
    after: async () => {
      const consistency = await guest!.thaw();
      reporter.emit('consistency', { consistency }, `consistency: ${consistency}`);
      const failure = mode === 'require' && consistency !== 'application' ? 'the snapshot is only crash-consistent (--quiesce require)' : undefined;
      return { consistency: wireConsistency(consistency), failure };
    },
  };
}

/** --driver qmp: qmp-backup quiesces itself and writes the consistency it achieved to `file`. */
function consistencyFromChild(file: string): RunBracket {
  return {
    before: async () => undefined,
    after: async () => {
      let said = '';
      try {
        said = fs.readFileSync(file, 'utf8').trim();
      } catch {
        // It did not get as far as a snapshot: nothing to say.
      }
      return said === 'application' || said === 'crash' ? { consistency: wireConsistency(said) } : {};
    },
  };
}

export interface ProgressSubject {
  host: string;
  vm: string;
  job: string;
}

/**
 * Tells the person at the terminal what host-backup is doing, on stderr: one line per change while it
 * waits (position, estimated start, what it waits for), the grant, the start, the end. With --json each
 * line is a JSON object ({"event": "queued", …}) instead.
 */
export class ProgressReporter {
  private lastQueued = '';
  private lastUnreachableAt = -Infinity;

  constructor(
    private readonly ctx: Context,
    private readonly subject: ProgressSubject,
  ) {}

  /** One line on stderr: `text`, or with --json the event and its data as a JSON object. */
  emit(event: string, data: Record<string, unknown>, text: string): void {
    if (this.ctx.json) this.ctx.io.stderr(`${JSON.stringify({ event, ...data })}\n`);
    else note(this.ctx, text);
  }

  queued(q: Queued__Output): void {
    // The coordinator may repeat an update; say only what changed (to the second).
    const key = `${q.position}|${q.waitingFor}|${Math.round(q.estimatedStartUnixMs / 1000)}`;
    if (key === this.lastQueued) return;
    this.lastQueued = key;
    const { host, vm } = this.subject;
    const now = this.ctx.now();
    const parts = [`position ${q.position}`];
    if (q.estimatedStartUnixMs) parts.push(`estimated start ${formatClockRelative(q.estimatedStartUnixMs, now)}`);
    if (q.waitingFor) parts.push(`waiting for ${q.waitingFor}`);
    this.emit('queued', { ...q }, `waiting for a HYPERVISOR token on ${host} for ${vm}: ${parts.join(', ')}`);
  }

  granted(t: Token__Output): void {
    const now = this.ctx.now();
    const slot = t.slot
      ? `slot ${formatClock(t.slot.startUnixMs, now)} → ${formatClock(t.slot.expectedEndUnixMs, now)}` +
        (t.slot.windowEndUnixMs ? `, window ends ${formatClock(t.slot.windowEndUnixMs, now)}` : '')
      : 'no slot';
    const ttl = t.ttlMs ? `, lease ${formatDuration(t.ttlMs)} renewed while it runs` : '';
    this.emit('granted', { token: t }, `granted token ${t.tokenId} (fencing ${t.fencing}) on ${t.host}: ${slot}${ttl}`);
  }

  hooks(argv: readonly string[]): GuardedRunHooks {
    return {
      onQueued: (q) => this.queued(q),
      onGranted: (t) => this.granted(t),
      onDenied: (d) => {
        const reason = denyReason.show(d.reason);
        this.emit('denied', { ...d, reason }, `denied (${reason}): ${d.message || 'no reason given'}`);
      },
      onUnreachable: (info) => {
        const now = this.ctx.now();
        if (now - this.lastUnreachableAt < UNREACHABLE_NOTICE_EVERY_MS) return;
        this.lastUnreachableAt = now;
        const code = (info.error as { code?: number }).code;
        const why = code === undefined ? info.error.message : `${statusName(code)}: ${(info.error as { details?: string }).details || info.error.message}`;
        const until = info.giveUpAtUnixMs ? `, giving up at ${formatClock(info.giveUpAtUnixMs, now)}` : '';
        this.emit(
          'unreachable',
          { error: why, attempt: info.attempt, retryInMs: info.retryInMs, giveUpAtUnixMs: info.giveUpAtUnixMs },
          `the coordinator at ${this.ctx.coordinator} is unreachable (${why}); retrying in ${formatSpan(info.retryInMs)}${until}`,
        );
      },
      onStarted: (pid) => this.emit('started', { pid, argv }, `running ${formatCommand(argv)}${pid ? ` (pid ${pid})` : ''}`),
      onStopping: (why) => this.emit('stopping', { why }, `stopping the command: ${why}`),
    };
  }

  finished(r: GuardedRunResult): void {
    const took = r.durationMs === undefined ? '' : ` after ${formatSpan(r.durationMs)}`;
    const text =
      r.status === 'succeeded' || r.status === 'failed'
        ? `${r.status === 'succeeded' ? 'done' : 'failed'}: ${r.message}${took}; token ${r.token ? 'released' : 'not held'}`
        : `${r.status}: ${r.message}`;
    this.emit('finished', { status: r.status, exitCode: r.exitCode, message: r.message, durationMs: r.durationMs }, `${text} (exit ${r.exitCode})`);
  }
}

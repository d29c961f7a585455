/**
 * One hypervisor-level backup under a HYPERVISOR token (`headroomctl host-backup`): runs a command
 * (vzdump, virsh, qemu-img …, or qmp-backup for the qmp driver) through the guarded run the agent uses too
 * (common/backup-run/guarded-run.ts): acquire → run → renew → release, the command stopped if the lease is
 * lost or the token revoked. The command's stdio is ours; progress goes out as events. The command is held
 * to a budget, throttled and paused by the host's load as a guest backup is by its VM's (host-budget.ts).
 * With a quiesce mode the guest's applications are frozen around the snapshot point (guest-quiesce.ts):
 * around the command, or, with the qmp driver, by qmp-backup around its QMP transaction, which reports back
 * the consistency achieved. With the qmp driver QEMU copies, outside the command's tree: the budget and the
 * load controller's pauses reach its block jobs through a CopyControlChannel that qmp-backup follows.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectEnforcement } from '../common/backup-run/budget/detect';
import { type GuardedRunResult, type RunBracket, type StopReason, runGuarded } from '../common/backup-run/guarded-run';
import type { TokenClient } from '../common/client/connection';
import { systemClock } from '../common/util/clock';
import { formatClock } from '../common/util/human';
import type { Logger } from '../common/util/log';
import type { Budget } from '../coordinator/domain/lease';
import type { CoordinatorLink } from './coordinator-link';
import { CopyControlChannel } from './copy-control-channel';
import { GuestQuiesce, type QuiesceMode } from './guest-quiesce';
import { wireConsistency } from './catalog/snapshot-wire';
import { HostBudget } from './host-budget';
import { type Emit, ProgressReporter } from './progress';
import { CONSISTENCY_FILE_ENV } from './driver-run';
import { watchRevocation } from './revoke-watch';

export interface HostBackupOptions {
  host: string;
  vm: string;
  /** The job name recorded with the token. */
  job: string;
  /** The command to run, directly (not through a shell); with the qmp driver, qmp-backup's command line. */
  argv: readonly string[];
  /**
   * qmp, libvirt: the command is qmp-backup or libvirt-backup, which quiesces by itself and tells us the
   * consistency it achieved.
   */
  driver: 'command' | 'qmp' | 'libvirt';
  /** The backup window from now: start within it, stopped at its end unless the policy allows overrun. */
  windowMs?: number;
  expectedDurationMs: number;
  /** Higher goes first among waiting HYPERVISOR requests. */
  priority: number;
  /** The lease TTL; 0: the host policy's. */
  ttlMs: number;
  /** The shared target (coordinator.yaml's targets) it writes to; empty: none. */
  sharedTarget: string;
  /** Between SIGTERM and SIGKILL when the command must stop. */
  killGraceMs: number;
  /** Caps on the token's budget (0: none). */
  limits: Budget;
  /** Around a command; the qmp driver passes its own to qmp-backup. */
  quiesce: QuiesceMode;
  /** The freeze's bound; 0: the agent's default. */
  quiesceHoldMs: number;
  link: CoordinatorLink;
  log: Logger;
  /** Wall-clock Unix ms, for the times printed. */
  now(): number;
  /** Aborted with a StopReason: withdraws the request, or stops the command (a signal is forwarded to it). */
  signal: AbortSignal;
  emit: Emit;
}

/** Runs the backup as the module header says; resolves to how it ended, with the exit code to end with. */
export async function runHostBackup(o: HostBackupOptions): Promise<GuardedRunResult> {
  const { host, vm, job, argv, link } = o;
  // The guarded run measures lease deadlines on the monotonic clock, which reads like Unix ms.
  const clock = systemClock;
  // As `headroom-agent exec` does: the window bounds both the start and the run.
  const windowEndUnixMs = o.windowMs === undefined ? 0 : clock.now() + o.windowMs;

  // The caller's stop, or a revoke: whichever comes first decides why the command stops.
  const abort = new AbortController();
  const stop = (reason: StopReason) => {
    if (!abort.signal.aborted) abort.abort(reason);
  };
  const onAbort = () => stop(o.signal.reason as StopReason);
  if (o.signal.aborted) onAbort();
  else o.signal.addEventListener('abort', onAbort, { once: true });

  const reporter = new ProgressReporter({
    subject: { host, vm, job },
    coordinator: link.address,
    now: o.now,
    emit: o.emit,
  });
  // A driver's child drives the copy in the hypervisor: the budget reaches it through this channel.
  const copyChannel = o.driver !== 'command' ? CopyControlChannel.create() : undefined;
  const control = new HostBudget({
    host,
    mechanism: detectEnforcement({ mode: 'auto', log: o.log }),
    limits: o.limits,
    fetchPolicy: () => link.getPolicy(host),
    clock,
    now: o.now,
    formatTime: (unixMs) => formatClock(unixMs, o.now()),
    log: o.log,
    emit: (event, data, text) => reporter.emit(event, data, text),
    copy: copyChannel && {
      control: copyChannel,
      speedBy: "QEMU's job speed",
      pauseBy: "QEMU's block-job-pause",
    },
  });
  let stopWatching = () => {};
  const hooks = reporter.hooks(argv);
  const consistencyDir =
    o.driver !== 'command' ? fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-consistency-')) : undefined;
  const consistencyFile = consistencyDir && path.join(consistencyDir, 'consistency');
  const bracket = consistencyFile
    ? consistencyFromChild(consistencyFile)
    : o.quiesce === 'off'
      ? undefined
      : quiesceAround(link.token(), o.quiesce, o.quiesceHoldMs, reporter);
  try {
    const result = await runGuarded({
      client: link.token(),
      connection: link.connection,
      request: {
        kind: 'TOKEN_KIND_HYPERVISOR',
        host,
        vm,
        job,
        expectedDurationMs: o.expectedDurationMs,
        latestStartUnixMs: windowEndUnixMs,
        windowEndUnixMs,
        priority: o.priority,
        ttlMs: o.ttlMs,
        target: o.sharedTarget,
      },
      argv,
      env: consistencyFile
        ? { ...process.env, [CONSISTENCY_FILE_ENV]: consistencyFile, ...copyChannel?.env() }
        : undefined,
      bracket,
      stdio: 'inherit',
      log: o.log,
      clock,
      signal: abort.signal,
      killGraceMs: o.killGraceMs,
      onUnreachable: 'skip',
      control,
      hooks: {
        ...hooks,
        onGranted(token) {
          hooks.onGranted?.(token);
          stopWatching = watchRevocation(link, o.log, token, (detail) => stop({ kind: 'revoke', reason: detail }));
        },
      },
    });
    reporter.finished(result);
    return result;
  } finally {
    stopWatching();
    o.signal.removeEventListener('abort', onAbort);
    if (consistencyDir) fs.rmSync(consistencyDir, { recursive: true, force: true });
    copyChannel?.close();
  }
}

/** Quiesce around a command: the guest is frozen for the whole command, the snapshot taken somewhere in it. */
function quiesceAround(client: TokenClient, mode: QuiesceMode, holdMs: number, reporter: ProgressReporter): RunBracket {
  let guest: GuestQuiesce | undefined;
  return {
    before: (token) => {
      guest = new GuestQuiesce({
        client,
        token,
        mode,
        holdMs,
        say: (event, data, text) => reporter.emit(event, data, text),
      });
      return guest.freeze();
    },
    after: async () => {
      const consistency = await guest!.thaw();
      reporter.emit('consistency', { consistency }, `consistency: ${consistency}`);
      const failure =
        mode === 'require' && consistency !== 'application'
          ? 'the snapshot is only crash-consistent (--quiesce require)'
          : undefined;
      return { consistency: wireConsistency(consistency), failure };
    },
  };
}

/** The qmp driver: qmp-backup quiesces itself and writes the consistency it achieved to `file`. */
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

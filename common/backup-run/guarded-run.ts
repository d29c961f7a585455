/**
 * A backup command run under a lease: acquire a token (waiting in the coordinator's queue), run the
 * command, renew the lease while it runs, release it with the outcome. Shared by the agent's scheduled
 * jobs, `headroom-agent exec` and `headroomctl host-backup`, so that all three stop their command the same
 * way when the lease is revoked or lost, and turn the same situations into the same exit codes.
 *
 * The pieces it is made of live beside it: keeping the lease (lease-renewer.ts, whose fail-safe stops the
 * command before the lease could expire), running the command (child-process.ts, under a watchdog that
 * stops it should we die), what it is told about its token (token-env.ts), retries (backoff.ts) and what
 * failed calls mean (call-status.ts).
 */
import { randomUUID } from 'node:crypto';
import type { v1 } from '../../proto';
import { Backoff, sleep } from '../util/backoff';
import { errorCode, errorText, LEASE_GONE, TRANSIENT } from '../client/call-status';
import {
  ChildExit,
  ChildStdio,
  DEFAULT_KILL_GRACE_MS,
  RunningChild,
  signalExitCode,
  spawnChild,
} from './child-process';
import type { Clock } from '../util/clock';
import { EXIT_CONFIG, EXIT_TEMPFAIL } from '../util/exit-codes';
import { unary } from '../client/connection';
import { LeaseLost, Renewer } from '../client/lease-renewer';
import { AcquireHooks, AcquireOptions, acquireToken } from '../client/token-acquirer';
import { tokenEnv } from './token-env';
import { GroupMembers, type ProcReader, realProc } from './budget/process-usage';
import { type TreeIo, TreeIoMeter } from './tree-io';
import { BYTES_FILE_ENV, ReportedBytes } from './reported-bytes';

/** Why a run is asked to stop, passed as the AbortSignal's reason (`controller.abort(reason)`). */
export type StopReason =
  /** The coordinator revoked the token: stop the command now; the token is already void. */
  | { kind: 'revoke'; reason: string }
  /** We received this signal: cancel the wait, or forward it to the command's process group. */
  | { kind: 'signal'; signal: NodeJS.Signals }
  /** The caller is shutting down: cancel the wait, or stop the command and release. */
  | { kind: 'shutdown'; reason: string };

export type GuardedRunStatus =
  'succeeded' | 'failed' | 'denied' | 'skipped' | 'misconfigured' | 'lease-lost' | 'revoked' | 'cancelled';

export interface GuardedRunResult {
  status: GuardedRunStatus;
  /** The command's exit code when it ran to its end (or was interrupted by a forwarded signal); else 75, or 128+n when cancelled by signal n. */
  exitCode: number;
  /** The token it ran under; absent when none was granted. */
  token?: v1.Token__Output;
  /** One line for people: what happened and why. */
  message: string;
  /** How long the command ran, ms; absent when it did not start. */
  durationMs?: number;
  /** True when the command ran without a token because the coordinator was unreachable (onUnreachable: run). */
  ranWithoutToken?: boolean;
}

/** Progress callbacks, so that a CLI can tell people what it waits for. All optional; none may throw. */
export interface GuardedRunHooks extends AcquireHooks {
  onGranted?(token: v1.Token__Output): void;
  onStarted?(pid: number | undefined): void;
  onRenewed?(renewed: v1.RenewResponse__Output): void;
  /** The command is being stopped, and why. */
  onStopping?(why: string): void;
}

/**
 * What else holds the command while it runs: budget enforcement (budget/run-budget.ts), in the agent's jobs and in `headroomctl host-backup`.
 * Its calls must not throw.
 */
export interface RunControl {
  /**
   * The command was just spawned (`token` is undefined when it runs without one). Called synchronously,
   * before the command had time to fork, so that its process group can be put in a cgroup whole.
   */
  started(child: RunningChild, token: v1.Token__Output | undefined): void;
  /**
   * The command was just sent its stop signal, or has exited: a paused or throttled command must be let
   * go so that it can act on the signal (a frozen or SIGSTOPped process cannot die of SIGTERM).
   */
  stopping(): void;
  /** The command and everything in its group are gone. */
  ended(): Promise<void>;
}

/**
 * Steps right before the command starts and right after it ended, under its token: `headroomctl
 * host-backup --quiesce` freezes the guest's applications around the command.
 */
export interface RunBracket {
  /** Before the command starts. A reason: the command does not start and the run fails with it (exit 1). */
  before(token: v1.Token__Output): Promise<string | undefined>;
  /**
   * After the command and its group ended (or did not start after `before` let it). `consistency` goes into
   * the release outcome; `failure` turns a succeeded run into a failed one (exit 1) with this reason.
   */
  after(): Promise<{ consistency?: v1.Consistency; failure?: string }>;
}

/** The AcquireRequest; request_id is generated (a fresh UUID) when absent. */
export type GuardedRequest = Omit<v1.AcquireRequest, 'requestId'> & { requestId?: string };

export interface GuardedRunOptions extends AcquireOptions {
  request: GuardedRequest;
  /** The command, never a shell string. */
  argv: readonly string[];
  /** Default 'inherit'. */
  stdio?: ChildStdio;
  /** The command's environment (default ours), to which the token's variables are added (backup-run/token-env.ts). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Monotonic clock reading like Unix ms: lease deadlines and window ends are measured on it. */
  clock: Clock;
  /** Abort with a StopReason to cancel the wait or stop the command. */
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL to the command's process group, ms. Default DEFAULT_KILL_GRACE_MS (10000, child-process.ts). */
  killGraceMs?: number;
  hooks?: GuardedRunHooks;
  control?: RunControl;
  /** Only for a run under a token. */
  bracket?: RunBracket;
  /** Starts the command; spawnChild by default, a fake in unit tests. */
  spawn?: typeof spawnChild;
  /** Where the command tree's I/O counters are read (tree-io.ts); the real /proc by default, a fake in unit tests. */
  proc?: ProcReader;
}

/**
 * How often the command tree's I/O counters are sampled while it runs: what a process that exits without
 * being reaped by a member of the tree did since the last sample is lost (tree-io.ts).
 */
const IO_SAMPLE_MS = 1_000;

export function toStopReason(reason: unknown): StopReason {
  const r = reason as StopReason | undefined;
  if (r && (r.kind === 'revoke' || r.kind === 'shutdown' || r.kind === 'signal')) return r;
  return { kind: 'shutdown', reason: reason instanceof Error ? reason.message : String(reason ?? 'aborted') };
}

export function describeStop(reason: StopReason): string {
  switch (reason.kind) {
    case 'revoke':
      return `token revoked by the coordinator: ${reason.reason || 'no reason given'}`;
    case 'signal':
      return `received ${reason.signal}`;
    case 'shutdown':
      return reason.reason;
  }
}

/** Runs the command under `options` as described in the module header. Never rejects for the command's or the coordinator's failures. */
export async function runGuarded(options: GuardedRunOptions): Promise<GuardedRunResult> {
  const request: v1.AcquireRequest = { ...options.request, requestId: options.request.requestId || randomUUID() };
  const log = options.log.child({ job: request.job, requestId: request.requestId });
  const o = { ...options, log };
  const acquired = await acquireToken(o, request);
  if (acquired.kind === 'cancelled') {
    const reason = toStopReason(o.signal?.reason);
    const exitCode = reason.kind === 'signal' ? signalExitCode(reason.signal) : EXIT_TEMPFAIL;
    return { status: 'cancelled', exitCode, message: `${acquired.message}: ${describeStop(reason)}` };
  }
  if (acquired.kind === 'denied' || acquired.kind === 'skipped')
    return { status: acquired.kind, exitCode: EXIT_TEMPFAIL, message: acquired.message };
  // Not "try later": nothing changes until a setting does.
  if (acquired.kind === 'misconfigured')
    return { status: acquired.kind, exitCode: EXIT_CONFIG, message: acquired.message };
  if (acquired.kind === 'run-without-token') {
    log.warn('coordinator unreachable: running the job without a token (onUnreachable: run)', {
      error: errorText(acquired.error),
    });
    const result = await runChild(o, undefined, undefined);
    return {
      ...result,
      ranWithoutToken: true,
      message: `ran without a token (coordinator unreachable): ${result.message}`,
    };
  }
  o.hooks?.onGranted?.(acquired.token);
  log.debug('granted', {
    tokenId: acquired.token.tokenId,
    fencing: acquired.token.fencing,
    ttlMs: acquired.token.ttlMs,
  });
  return runChild(o, acquired.token, acquired.receivedAt);
}

/** Why the command was stopped by us rather than ending on its own. */
type StopCause = { kind: 'abort'; reason: StopReason } | ({ kind: 'lease-lost' } & LeaseLost);

/** Runs the command (under `token` when given) until it ends or is stopped; renews and releases. */
async function runChild(
  o: GuardedRunOptions,
  token: v1.Token__Output | undefined,
  receivedAt: number | undefined,
): Promise<GuardedRunResult> {
  const graceMs = o.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  let stopCause: StopCause | undefined;
  let child: RunningChild | undefined;
  let forwardKillTimer: NodeJS.Timeout | undefined;

  const requestStop = (cause: StopCause) => {
    if (stopCause) return;
    stopCause = cause;
    renewer?.stop();
    const why = cause.kind === 'abort' ? describeStop(cause.reason) : cause.message;
    o.hooks?.onStopping?.(why);
    if (!child) return;
    if (cause.kind === 'abort' && cause.reason.kind === 'signal') {
      // Forward the signal as a terminal would (to the whole group), and let the command finish its own way.
      o.log.info('forwarding signal to the command', { signal: cause.reason.signal, pid: child.pid });
      child.signalGroup(cause.reason.signal);
      o.control?.stopping();
      forwardKillTimer = setTimeout(() => void child?.stop(0), graceMs);
      return;
    }
    o.log.warn('stopping the command', { pid: child.pid, why });
    // stop() sends SIGTERM before it returns: the command is let go only once the signal is pending.
    void child.stop(graceMs);
    o.control?.stopping();
  };

  const renewing = {
    client: o.client,
    clock: o.clock,
    log: o.log,
    onRenewed: (r: v1.RenewResponse__Output) => o.hooks?.onRenewed?.(r),
  };
  const renewer =
    token && receivedAt !== undefined
      ? new Renewer(renewing, token, receivedAt, (lost) => requestStop({ kind: 'lease-lost', ...lost }))
      : undefined;
  const onAbort = () => requestStop({ kind: 'abort', reason: toStopReason(o.signal?.reason) });

  const bracket = token ? o.bracket : undefined;
  const refusal = bracket && !o.signal?.aborted ? await bracket.before(token!) : undefined;
  const startedAt = o.clock.now();
  let exit: ChildExit;
  let io: TreeIo | undefined;
  // requestStop may have run while `before` was awaited (a closure: the compiler cannot see it).
  const stopRequested = (stopCause as StopCause | undefined) !== undefined;
  if (o.signal?.aborted || refusal !== undefined || stopRequested) {
    // Aborted (or the lease lost) between the grant and the start, or refused by the bracket: do not start at all.
    if (o.signal?.aborted) onAbort();
    renewer?.stop();
    exit = { code: null, signal: null, exitCode: refusal !== undefined ? 1 : EXIT_TEMPFAIL };
  } else {
    // Only under a token: the figure is for its release.
    const reported = token ? ReportedBytes.create() : undefined;
    const env = { ...tokenEnv(o.env ?? process.env, token), ...(reported && { [BYTES_FILE_ENV]: reported.file }) };
    child = (o.spawn ?? spawnChild)(o.argv, {
      stdio: o.stdio ?? 'inherit',
      env,
      cwd: o.cwd,
      log: o.log,
      killGraceMs: graceMs,
    });
    o.control?.started(child, token);
    const meter = treeIoMeter(child, o.proc ?? realProc);
    const sampling = meter && setInterval(() => meter.sample(), IO_SAMPLE_MS).unref();
    o.hooks?.onStarted?.(child.pid);
    o.log.debug('command started', { pid: child.pid, argv: o.argv });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    exit = await child.exited;
    // At once: the leader was just reaped into our own counters (tree-io.ts).
    meter?.sample();
    o.signal?.removeEventListener('abort', onAbort);
    clearTimeout(forwardKillTimer);
    renewer?.stop();
    // What the command left behind in its group is stopped next; paused, it could not act on that.
    o.control?.stopping();
    // Whatever the command left running in its group must not outlive the lease: wait for the stop under
    // way to have cleared the group, or clear what the command left behind when it ended by itself.
    const stopped = stopCause && !(stopCause.kind === 'abort' && stopCause.reason.kind === 'signal');
    await (stopped ? child.stop(graceMs) : child.stopLeftovers(graceMs));
    clearInterval(sampling);
    meter?.sample();
    io = meter?.result();
    // The command's own figure wins: it may know of bytes its tree did not write itself.
    const told = reported?.take();
    if (told !== undefined) io = { read: io?.read ?? 0, written: told };
    await o.control?.ended();
  }
  const durationMs = o.clock.now() - startedAt;
  const bracketed = bracket ? await bracket.after() : {};

  let status: GuardedRunStatus;
  let exitCode = exit.exitCode;
  let message: string;
  const exitText = exit.error
    ? `could not start ${o.argv[0]}: ${exit.error.message}`
    : exit.signal
      ? `killed by ${exit.signal}`
      : `exit code ${exit.code}`;
  let release = token !== undefined;
  if (refusal !== undefined && !stopCause) {
    status = 'failed';
    message = `${refusal}; command not started`;
  } else if (!stopCause) {
    status = exit.exitCode === 0 ? 'succeeded' : 'failed';
    message = exitText;
    if (status === 'succeeded' && bracketed.failure) {
      status = 'failed';
      exitCode = 1;
      message = `${exitText}, but ${bracketed.failure}`;
    }
  } else if (stopCause.kind === 'lease-lost') {
    status = 'lease-lost';
    exitCode = EXIT_TEMPFAIL;
    message = `${stopCause.message}; command stopped (${exitText})`;
    release = !stopCause.tokenVoid; // after a fail-safe stop, try: the coordinator may be back
  } else if (stopCause.reason.kind === 'revoke') {
    status = 'revoked';
    exitCode = EXIT_TEMPFAIL;
    message = `${describeStop(stopCause.reason)}; command stopped (${exitText})`;
    release = false; // the token is already void
  } else {
    status = 'cancelled';
    if (stopCause.reason.kind === 'shutdown') exitCode = EXIT_TEMPFAIL;
    message = `${describeStop(stopCause.reason)}; command ${child ? `stopped (${exitText})` : 'not started'}`;
  }

  if (token && release) {
    const outcome: v1.Outcome = {
      success: status === 'succeeded',
      // Unset when unknown; nothing was written by a command that did not start.
      ...(child ? (io ? { bytes: io.written } : {}) : { bytes: 0 }),
      durationMs: Math.min(durationMs, 0xffffffff),
      exitCode,
      message,
      ...(bracketed.consistency ? { consistency: bracketed.consistency } : {}),
    };
    await releaseToken(o, token, outcome);
  }
  const level = status === 'succeeded' ? 'debug' : 'warn';
  o.log[level]('guarded run ended', { status, exitCode, durationMs, readBytes: io?.read, writtenBytes: io?.written });
  return { status, exitCode, token, message, durationMs: child ? durationMs : undefined };
}

/** Meters the tree of `child` (its group, less the watchdog), from right after its spawn; none when it did not start. */
function treeIoMeter(child: RunningChild, proc: ProcReader): TreeIoMeter | undefined {
  if (child.pid === undefined) return undefined;
  const members = new GroupMembers(child.pid, () => child.watchdogPid, proc);
  return new TreeIoMeter(child.pid, () => members.list(), proc);
}

/**
 * Releases with a few quick retries; failing that the lease simply expires on the coordinator. Resolves to
 * whether the coordinator took the release. Also used by `headroomctl hold`.
 */
export async function releaseToken(
  o: Pick<GuardedRunOptions, 'client' | 'log'>,
  token: Pick<v1.Token__Output, 'tokenId' | 'fencing'>,
  outcome: v1.Outcome,
): Promise<boolean> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 2_000, random: () => 0.5 });
  for (let attempt = 1; ; attempt++) {
    try {
      await unary<v1.ReleaseRequest, v1.ReleaseResponse__Output>(o.client.Release.bind(o.client), {
        tokenId: token.tokenId,
        fencing: token.fencing,
        outcome,
      });
      o.log.debug('released', { tokenId: token.tokenId });
      return true;
    } catch (err) {
      const code = errorCode(err);
      const again = attempt < 3 && code !== undefined && TRANSIENT.has(code);
      if (!again) {
        const fields = { tokenId: token.tokenId, error: errorText(err) };
        if (code !== undefined && LEASE_GONE.has(code))
          o.log.info('release refused: the lease had already ended', fields);
        else o.log.warn('could not release the token; it will expire on the coordinator', fields);
        return false;
      }
      await sleep(backoff.next());
    }
  }
}

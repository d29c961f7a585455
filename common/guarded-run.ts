/**
 * A backup command run under a lease: acquire a token (waiting in the coordinator's queue), run the
 * command, renew the lease while it runs, release it with the outcome. Shared by the agent's scheduled
 * jobs, `headroom-agent exec` and `headroomctl host-backup`, so that all three stop their command the same
 * way when the lease is revoked or lost, and turn the same situations into the same exit codes.
 *
 * Safety rests on the holder's own monotonic clock: when renewals cannot reach the coordinator, the
 * command is stopped before the lease could have expired there, so a partitioned holder is idle by the
 * time the coordinator hands the slot to someone else.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { v1 } from '../proto';
import type { Clock } from './clock';
import { ChildExit, ChildStdio, DEFAULT_KILL_GRACE_MS, RunningChild, signalExitCode, spawnChild } from './child-process';
import { deadlineIn, TokenClient, unary, UNARY_DEADLINE_MS } from './connection';
import { formatDuration } from './duration';
import type { Logger } from './log';
import { tokenEnv } from './token-env';

/** sysexits.h codes that the agent and headroomctl exit with when they, not the command, decide. */
export const EXIT_USAGE = 64;
/** Denied, skipped, lease lost or revoked: nothing ran to completion, try again later. */
export const EXIT_TEMPFAIL = 75;
export const EXIT_CONFIG = 78;

export { DEFAULT_KILL_GRACE_MS };

// ---------------------------------------------------------------------------------------------------------
// Pure timing: backoff, renew schedule, fail-safe deadline.

export interface BackoffOptions {
  /** First delay, ms. Default 1000. */
  initialMs?: number;
  /** Largest delay, ms. Default 30000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /** Each delay is spread uniformly over ±jitter of itself, so that many agents do not retry in step. Default 0.2. */
  jitter?: number;
  /** Source of randomness in [0, 1); Math.random by default, fixed in tests. */
  random?: () => number;
}

/** Exponential backoff with jitter: 1 s, 2 s, 4 s … up to 30 s by default, each ±20 %. */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly multiplier: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 1_000;
    this.maxMs = options.maxMs ?? 30_000;
    this.multiplier = options.multiplier ?? 2;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt, ms; grows with every call until reset(). */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.multiplier ** this.attempt);
    this.attempt++;
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.max(0, Math.round(Math.min(this.maxMs, base + spread)));
  }

  /** Number of delays handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}

export interface LeaseTiming {
  /** Renew this long after the last successful renewal was sent: a third of the TTL. */
  renewIntervalMs: number;
  /** Stop the command this long before the lease would expire by our clock: max(1 s, TTL/6), at most TTL/2. */
  safetyMarginMs: number;
}

export function leaseTiming(ttlMs: number): LeaseTiming {
  return {
    renewIntervalMs: Math.max(1, Math.floor(ttlMs / 3)),
    safetyMarginMs: Math.floor(Math.min(Math.max(1_000, ttlMs / 6), ttlMs / 2)),
  };
}

/**
 * When the command must be stopped if no renewal succeeds before: the lease's expiry by our own clock
 * minus the safety margin. `localExpiryMs` is measured from when the last successful call was *sent*
 * (or the grant received), which can only be earlier than the coordinator's view.
 */
export function failSafeDeadline(localExpiryMs: number, ttlMs: number): number {
  return localExpiryMs - leaseTiming(ttlMs).safetyMarginMs;
}

/** Delay before retrying the `failures`-th failed renewal: 500 ms doubling, at most TTL/6 (≥ 250 ms). */
export function renewRetryDelay(failures: number, ttlMs: number): number {
  const cap = Math.max(250, Math.floor(ttlMs / 6));
  return Math.min(cap, 500 * 2 ** Math.max(0, failures - 1));
}

// ---------------------------------------------------------------------------------------------------------
// The guarded run.

/** Why a run is asked to stop, passed as the AbortSignal's reason (`controller.abort(reason)`). */
export type StopReason =
  /** The coordinator revoked the token: stop the command now; the token is already void. */
  | { kind: 'revoke'; reason: string }
  /** We received this signal: cancel the wait, or forward it to the command's process group. */
  | { kind: 'signal'; signal: NodeJS.Signals }
  /** The caller is shutting down: cancel the wait, or stop the command and release. */
  | { kind: 'shutdown'; reason: string };

export type GuardedRunStatus = 'succeeded' | 'failed' | 'denied' | 'skipped' | 'lease-lost' | 'revoked' | 'cancelled';

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

export interface UnreachableInfo {
  error: grpc.ServiceError | Error;
  /** Failed attempts so far. */
  attempt: number;
  retryInMs: number;
  /** When waiting gives up (the latest start), Unix ms; 0 when never. */
  giveUpAtUnixMs: number;
}

/** Progress callbacks, so that a CLI can tell people what it waits for. All optional; none may throw. */
export interface GuardedRunHooks {
  onQueued?(queued: v1.Queued__Output): void;
  onGranted?(token: v1.Token__Output): void;
  onDenied?(denied: v1.Denied__Output): void;
  onUnreachable?(info: UnreachableInfo): void;
  onStarted?(pid: number | undefined): void;
  onRenewed?(renewed: v1.RenewResponse__Output): void;
  /** The command is being stopped, and why. */
  onStopping?(why: string): void;
}

/** The AcquireRequest; request_id is generated (a fresh UUID) when absent. */
export type GuardedRequest = Omit<v1.AcquireRequest, 'requestId'> & { requestId?: string };

export interface GuardedRunOptions {
  client: TokenClient;
  request: GuardedRequest;
  /** The command, never a shell string. */
  argv: readonly string[];
  /** Default 'inherit'. */
  stdio?: ChildStdio;
  /** The command's environment (default ours), to which the token's variables are added (common/token-env.ts). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log: Logger;
  /** Monotonic clock reading like Unix ms: lease deadlines and window ends are measured on it. */
  clock: Clock;
  /** Abort with a StopReason to cancel the wait or stop the command. */
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL to the command's process group, ms. Default 10000. */
  killGraceMs?: number;
  /** What to do when the coordinator cannot be reached to acquire: keep trying until the latest start ('skip', default) or run without a token ('run'). */
  onUnreachable?: 'skip' | 'run';
  hooks?: GuardedRunHooks;
  /** Backoff between acquire attempts while the coordinator is unreachable. */
  backoff?: BackoffOptions;
  /** Starts the command; spawnChild by default, a fake in unit tests. */
  spawn?: typeof spawnChild;
}

/** Codes that mean "the coordinator could not be reached" (onUnreachable applies). */
const UNREACHABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
/** Codes worth retrying an acquire for with the same request_id (idempotent). */
const TRANSIENT = new Set([
  ...UNREACHABLE,
  grpc.status.ABORTED,
  grpc.status.CANCELLED, // the server went away mid-stream; our own cancels never get here
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.INTERNAL,
  grpc.status.UNKNOWN,
]);
/** Renew answers that mean the lease is gone for good. */
const LEASE_GONE = new Set([grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND]);

/** How long past the latest start an acquire stream may stay open: the coordinator denies at the latest start itself. */
const ACQUIRE_DEADLINE_SLACK_MS = 60_000;

const errorCode = (err: unknown): number | undefined => (err as grpc.ServiceError)?.code;
const errorText = (err: unknown): string =>
  (err as grpc.ServiceError)?.details || (err as Error)?.message || String(err);

export function toStopReason(reason: unknown): StopReason {
  const r = reason as StopReason | undefined;
  if (r && (r.kind === 'revoke' || r.kind === 'shutdown' || r.kind === 'signal')) return r;
  return { kind: 'shutdown', reason: reason instanceof Error ? reason.message : String(reason ?? 'aborted') };
}

function describeStop(reason: StopReason): string {
  switch (reason.kind) {
    case 'revoke':
      return `token revoked by the coordinator: ${reason.reason || 'no reason given'}`;
    case 'signal':
      return `received ${reason.signal}`;
    case 'shutdown':
      return reason.reason;
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type AcquireAttempt =
  | { kind: 'granted'; token: v1.Token__Output; receivedAt: number }
  | { kind: 'denied'; denied: v1.Denied__Output }
  | { kind: 'cancelled' }
  | { kind: 'error'; error: grpc.ServiceError | Error; progressed: boolean };

/** One Acquire stream until GRANTED, DENIED, an error or our abort (which cancels the stream: the request is withdrawn). */
function acquireOnce(o: GuardedRunOptions, request: v1.AcquireRequest, latestStart: number): Promise<AcquireAttempt> {
  return new Promise((resolve) => {
    if (o.signal?.aborted) return resolve({ kind: 'cancelled' });
    // The queue may hold us for hours, so no deadline unless there is a latest start: then a little after it,
    // as a backstop should the coordinator not deny in time.
    const callOptions: grpc.CallOptions = {};
    if (latestStart > 0) callOptions.deadline = deadlineIn(Math.max(0, latestStart - o.clock.now()) + ACQUIRE_DEADLINE_SLACK_MS);
    const call = o.client.Acquire(request, callOptions);
    let done = false;
    let progressed = false;
    const finish = (attempt: AcquireAttempt) => {
      if (done) return;
      done = true;
      o.signal?.removeEventListener('abort', onAbort);
      resolve(attempt);
    };
    const onAbort = () => {
      finish({ kind: 'cancelled' });
      call.cancel();
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    call.on('data', (update: v1.AcquireUpdate__Output) => {
      if (done) return;
      progressed = true;
      if (update.queued) o.hooks?.onQueued?.(update.queued);
      else if (update.granted) finish({ kind: 'granted', token: update.granted, receivedAt: o.clock.now() });
      else if (update.denied) finish({ kind: 'denied', denied: update.denied });
    });
    call.on('error', (error: grpc.ServiceError) => finish({ kind: 'error', error, progressed }));
    call.on('end', () => finish({ kind: 'error', error: new Error('the coordinator ended the acquire without a decision'), progressed }));
  });
}

type AcquireResult =
  | { kind: 'granted'; token: v1.Token__Output; receivedAt: number }
  | { kind: 'run-without-token'; error: Error }
  | { kind: 'done'; result: GuardedRunResult };

async function acquire(o: GuardedRunOptions, request: v1.AcquireRequest): Promise<AcquireResult> {
  const latestStart = Number(request.latestStartUnixMs ?? 0);
  const backoff = new Backoff(o.backoff);
  const what = `${request.kind} token for ${request.job || 'job'}`;
  let warned = false;
  for (;;) {
    const attempt = await acquireOnce(o, request, latestStart);
    if (attempt.kind === 'granted') return attempt;
    if (attempt.kind === 'cancelled') {
      const reason = toStopReason(o.signal?.reason);
      const exitCode = reason.kind === 'signal' ? signalExitCode(reason.signal) : EXIT_TEMPFAIL;
      return { kind: 'done', result: { status: 'cancelled', exitCode, message: `stopped waiting for a ${what}: ${describeStop(reason)}` } };
    }
    let error: Error;
    if (attempt.kind === 'denied') {
      o.hooks?.onDenied?.(attempt.denied);
      if (attempt.denied.reason !== 'COORDINATOR_STOPPING') {
        const why = attempt.denied.message || attempt.denied.reason;
        return { kind: 'done', result: { status: 'denied', exitCode: EXIT_TEMPFAIL, message: `denied a ${what}: ${why}` } };
      }
      error = new Error(`the coordinator is stopping: ${attempt.denied.message}`);
    } else {
      error = attempt.error;
      const code = errorCode(error);
      if (code !== undefined && !TRANSIENT.has(code)) {
        return {
          kind: 'done',
          result: { status: 'denied', exitCode: EXIT_TEMPFAIL, message: `the coordinator refused a ${what}: ${errorText(error)}` },
        };
      }
      if (code !== undefined && UNREACHABLE.has(code) && o.onUnreachable === 'run') return { kind: 'run-without-token', error };
      if (attempt.progressed) backoff.reset();
    }
    const now = o.clock.now();
    if (latestStart > 0 && now >= latestStart) {
      return {
        kind: 'done',
        result: {
          status: 'skipped',
          exitCode: EXIT_TEMPFAIL,
          message: `skipped: could not get a ${what} before its window closed at ${new Date(latestStart).toISOString()} (${errorText(error)})`,
        },
      };
    }
    let retryInMs = backoff.next();
    if (latestStart > 0) retryInMs = Math.min(retryInMs, latestStart - now);
    const fields = { job: request.job, error: errorText(error), retryInMs };
    if (!warned) o.log.warn('cannot reach the coordinator to acquire a token; retrying until the window closes', fields);
    else o.log.debug('acquire retry failed', fields);
    warned = true;
    o.hooks?.onUnreachable?.({ error, attempt: backoff.attempts, retryInMs, giveUpAtUnixMs: latestStart });
    // Retry once more at the latest start exactly: the coordinator answers WINDOW_CLOSED or grants.
    if (!(await sleep(retryInMs, o.signal))) continue; // aborted: the next acquireOnce reports it
  }
}

/** Runs the command under `options` as described in the module header. Never rejects for the command's or the coordinator's failures. */
export async function runGuarded(options: GuardedRunOptions): Promise<GuardedRunResult> {
  const request: v1.AcquireRequest = { ...options.request, requestId: options.request.requestId || randomUUID() };
  const log = options.log.child({ job: request.job, requestId: request.requestId });
  const o = { ...options, log };
  const acquired = await acquire(o, request);
  if (acquired.kind === 'done') return acquired.result;
  if (acquired.kind === 'run-without-token') {
    log.warn('coordinator unreachable: running the job without a token (onUnreachable: run)', { error: errorText(acquired.error) });
    const result = await runChild(o, undefined, undefined);
    return { ...result, ranWithoutToken: true, message: `ran without a token (coordinator unreachable): ${result.message}` };
  }
  o.hooks?.onGranted?.(acquired.token);
  log.debug('granted', { tokenId: acquired.token.tokenId, fencing: acquired.token.fencing, ttlMs: acquired.token.ttlMs });
  return runChild(o, acquired.token, acquired.receivedAt);
}

/** Why the command was stopped by us rather than ending on its own. */
type StopCause =
  | { kind: 'abort'; reason: StopReason }
  | { kind: 'lease-lost'; message: string; tokenVoid: boolean };

/** Keeps a lease alive while the command runs; calls `lost` once when it cannot. */
class Renewer {
  private renewTimer?: NodeJS.Timeout;
  private failSafeTimer?: NodeJS.Timeout;
  private stopped = false;
  private failures = 0;
  private ttlMs: number;

  constructor(
    private readonly o: GuardedRunOptions,
    private readonly token: v1.Token__Output,
    receivedAt: number,
    private readonly lost: (cause: StopCause) => void,
  ) {
    this.ttlMs = token.ttlMs || Math.max(1, token.expiresUnixMs - token.grantedUnixMs);
    this.extend(receivedAt);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.failSafeTimer);
  }

  /** A renewal sent at `sentAt` (or the grant received then) succeeded: the lease is good until sentAt + TTL by our clock. */
  private extend(sentAt: number): void {
    const deadline = failSafeDeadline(sentAt + this.ttlMs, this.ttlMs);
    clearTimeout(this.failSafeTimer);
    this.failSafeTimer = setTimeout(() => this.failSafe(deadline), Math.max(0, deadline - this.o.clock.now()));
    this.schedule(sentAt + leaseTiming(this.ttlMs).renewIntervalMs);
  }

  private schedule(at: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), Math.max(0, at - this.o.clock.now()));
  }

  private failSafe(deadline: number): void {
    if (this.stopped) return;
    this.stop();
    this.lost({
      kind: 'lease-lost',
      tokenVoid: false,
      message: `could not renew the lease; stopped ${formatDuration(leaseTiming(this.ttlMs).safetyMarginMs)} before it would expire (fail-safe at ${new Date(deadline).toISOString()})`,
    });
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const sentAt = this.o.clock.now();
    try {
      // Each attempt is bounded by a third of the TTL, so that a hanging call leaves room for retries.
      const deadlineMs = Math.min(UNARY_DEADLINE_MS, Math.max(250, leaseTiming(this.ttlMs).renewIntervalMs));
      const request = { tokenId: this.token.tokenId, fencing: this.token.fencing };
      const res = await unary<v1.RenewRequest, v1.RenewResponse__Output>(this.o.client.Renew.bind(this.o.client), request, deadlineMs);
      if (this.stopped) return;
      if (this.failures > 0) this.o.log.info('lease renewed again', { failures: this.failures });
      this.failures = 0;
      if (res.ttlMs > 0) this.ttlMs = res.ttlMs;
      this.o.hooks?.onRenewed?.(res);
      this.o.log.debug('renewed', { tokenId: this.token.tokenId, ttlMs: this.ttlMs });
      this.extend(sentAt);
    } catch (err) {
      if (this.stopped) return;
      const code = errorCode(err);
      if (code !== undefined && LEASE_GONE.has(code)) {
        this.stop();
        this.lost({ kind: 'lease-lost', tokenVoid: true, message: `lease lost: the coordinator refused renewal (${errorText(err)})` });
        return;
      }
      this.failures++;
      const fields = { tokenId: this.token.tokenId, error: errorText(err), failures: this.failures };
      if (this.failures === 1) this.o.log.warn('lease renewal failed; retrying until the fail-safe deadline', fields);
      else this.o.log.debug('lease renewal failed again', fields);
      // The fail-safe timer stays armed and fires on its own should no retry succeed before it.
      this.schedule(this.o.clock.now() + renewRetryDelay(this.failures, this.ttlMs));
    }
  }
}

/** Runs the command (under `token` when given) until it ends or is stopped; renews and releases. */
async function runChild(o: GuardedRunOptions, token: v1.Token__Output | undefined, receivedAt: number | undefined): Promise<GuardedRunResult> {
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
      forwardKillTimer = setTimeout(() => void child?.stop(0), graceMs);
      return;
    }
    o.log.warn('stopping the command', { pid: child.pid, why });
    void child.stop(graceMs);
  };

  const renewer = token && receivedAt !== undefined ? new Renewer(o, token, receivedAt, requestStop) : undefined;
  const onAbort = () => requestStop({ kind: 'abort', reason: toStopReason(o.signal?.reason) });

  const startedAt = o.clock.now();
  let exit: ChildExit;
  if (o.signal?.aborted) {
    // Aborted between the grant and the start: do not start at all.
    onAbort();
    exit = { code: null, signal: null, exitCode: EXIT_TEMPFAIL };
  } else {
    const env = tokenEnv(o.env ?? process.env, token);
    child = (o.spawn ?? spawnChild)(o.argv, { stdio: o.stdio ?? 'inherit', env, cwd: o.cwd, log: o.log, killGraceMs: graceMs });
    o.hooks?.onStarted?.(child.pid);
    o.log.debug('command started', { pid: child.pid, argv: o.argv });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    exit = await child.exited;
    o.signal?.removeEventListener('abort', onAbort);
    clearTimeout(forwardKillTimer);
    renewer?.stop();
    // Whatever the command left running in its group must not outlive the lease: wait for the stop under
    // way to have cleared the group, or clear what the command left behind when it ended by itself.
    const stopped = stopCause && !(stopCause.kind === 'abort' && stopCause.reason.kind === 'signal');
    await (stopped ? child.stop(graceMs) : child.stopLeftovers(graceMs));
  }
  const durationMs = o.clock.now() - startedAt;

  let status: GuardedRunStatus;
  let exitCode = exit.exitCode;
  let message: string;
  const exitText = exit.error
    ? `could not start ${o.argv[0]}: ${exit.error.message}`
    : exit.signal
      ? `killed by ${exit.signal}`
      : `exit code ${exit.code}`;
  let release = token !== undefined;
  if (!stopCause) {
    status = exit.exitCode === 0 ? 'succeeded' : 'failed';
    message = exitText;
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
      bytes: 0, // not known for an arbitrary command
      durationMs: Math.min(durationMs, 0xffffffff),
      exitCode,
      message,
    };
    await releaseToken(o, token, outcome);
  }
  const level = status === 'succeeded' ? 'debug' : 'warn';
  o.log[level]('guarded run ended', { status, exitCode, durationMs });
  return { status, exitCode, token, message, durationMs: child ? durationMs : undefined };
}

/** Releases with a few quick retries; failing that the lease simply expires on the coordinator. */
async function releaseToken(o: GuardedRunOptions, token: v1.Token__Output, outcome: v1.Outcome): Promise<void> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 2_000, random: () => 0.5 });
  for (let attempt = 1; ; attempt++) {
    try {
      await unary<v1.ReleaseRequest, v1.ReleaseResponse__Output>(o.client.Release.bind(o.client), { tokenId: token.tokenId, fencing: token.fencing, outcome });
      o.log.debug('released', { tokenId: token.tokenId });
      return;
    } catch (err) {
      const code = errorCode(err);
      const again = attempt < 3 && code !== undefined && TRANSIENT.has(code);
      if (!again) {
        const fields = { tokenId: token.tokenId, error: errorText(err) };
        if (code !== undefined && LEASE_GONE.has(code)) o.log.info('release refused: the lease had already ended', fields);
        else o.log.warn('could not release the token; it will expire on the coordinator', fields);
        return;
      }
      await sleep(backoff.next());
    }
  }
}

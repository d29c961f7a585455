/**
 * Waiting for a token: one Acquire stream at a time with the same request id, queue progress passed on,
 * retries with backoff while the coordinator is unreachable or restarting, until a grant, a denial, the
 * latest start or our abort (which cancels the stream: the coordinator withdraws the request).
 */
import * as grpc from '@grpc/grpc-js';
import type { v1 } from '../../proto';
import { denyReason, tokenKind } from '../../proto/enums';
import { Backoff, BackoffOptions, sleep } from '../util/backoff';
import { errorCode, errorText, TRANSIENT, UNREACHABLE } from './call-status';
import type { Clock } from '../util/clock';
import { deadlineIn, TokenClient } from './connection';
import { type ConnectionContext, describeDiagnosis, diagnoseCall } from './tls-diagnosis';
import type { Logger } from '../util/log';
import { formatClock, formatSpan } from '../util/human';

/** What onUnreachable is told after each failed attempt while the coordinator cannot be reached. */
export interface UnreachableInfo {
  error: grpc.ServiceError | Error;
  /** Failed attempts so far. */
  attempt: number;
  retryInMs: number;
  /** When waiting gives up (the latest start), Unix ms; 0 when never. */
  giveUpAtUnixMs: number;
}

/** Progress while waiting. All optional; none may throw. */
export interface AcquireHooks {
  onQueued?(queued: v1.Queued__Output): void;
  onDenied?(denied: v1.Denied__Output): void;
  onUnreachable?(info: UnreachableInfo): void;
}

export interface AcquireOptions {
  client: TokenClient;
  /** Monotonic clock reading like Unix ms: the latest start is measured on it. */
  clock: Clock;
  log: Logger;
  /** Aborting cancels the wait. */
  signal?: AbortSignal;
  /** When the coordinator cannot be reached: keep trying until the latest start ('skip', default) or give up at once to run without a token ('run'). */
  onUnreachable?: 'skip' | 'run';
  /** Backoff between attempts while the coordinator is unreachable. */
  backoff?: BackoffOptions;
  hooks?: AcquireHooks;
  /** How the client connects: a refusal that no retry can cure (TLS, identity, access) is then told apart, with its fix. */
  connection?: ConnectionContext;
}

/** How long past the latest start an acquire stream may stay open: the coordinator denies at the latest start itself. */
const ACQUIRE_DEADLINE_SLACK_MS = 60_000;

type AcquireAttempt =
  | { kind: 'granted'; token: v1.Token__Output; receivedAt: number }
  | { kind: 'denied'; denied: v1.Denied__Output }
  | { kind: 'cancelled' }
  | { kind: 'error'; error: grpc.ServiceError | Error; progressed: boolean };

/** One Acquire stream until GRANTED, DENIED, an error or our abort (which cancels the stream: the request is withdrawn). */
function acquireOnce(o: AcquireOptions, request: v1.AcquireRequest, latestStart: number): Promise<AcquireAttempt> {
  return new Promise((resolve) => {
    if (o.signal?.aborted) return resolve({ kind: 'cancelled' });
    // The queue may hold us for hours, so no deadline unless there is a latest start: then a little after it,
    // as a backstop should the coordinator not deny in time.
    const callOptions: grpc.CallOptions = {};
    if (latestStart > 0)
      callOptions.deadline = deadlineIn(Math.max(0, latestStart - o.clock.now()) + ACQUIRE_DEADLINE_SLACK_MS);
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
    call.on('end', () =>
      finish({ kind: 'error', error: new Error('the coordinator ended the acquire without a decision'), progressed }),
    );
  });
}

/** How the wait for a token ended. `message` is one line for people. */
export type Acquired =
  | { kind: 'granted'; token: v1.Token__Output; receivedAt: number }
  /** Unreachable, and onUnreachable is 'run'. */
  | { kind: 'run-without-token'; error: Error }
  /** Aborted through `signal`; the request was withdrawn. The message says what was waited for, not why it stopped. */
  | { kind: 'cancelled'; message: string }
  /** Denied by the coordinator, or refused as a bad request: no point in asking again now. */
  | { kind: 'denied'; message: string }
  /** No decision before the latest start (the coordinator unreachable until then). */
  | { kind: 'skipped'; message: string }
  /** Refused for a setting of this client or the coordinator (tls-diagnosis.ts): asking again cannot help. */
  | { kind: 'misconfigured'; message: string };

/**
 * Waits for a token for `request` (request_id set: it is the same for every attempt) until it is granted,
 * denied, `signal` aborts or the latest start passes; retries with backoff while the coordinator is
 * unreachable or stopping. Never rejects for the coordinator's failures.
 */
export async function acquireToken(o: AcquireOptions, request: v1.AcquireRequest): Promise<Acquired> {
  const latestStart = Number(request.latestStartUnixMs ?? 0);
  const backoff = new Backoff(o.backoff);
  const what = `${tokenKind.show(request.kind)} token for ${request.job || 'job'}`;
  let warned = false;
  for (;;) {
    const attempt = await acquireOnce(o, request, latestStart);
    if (attempt.kind === 'granted') return attempt;
    if (attempt.kind === 'cancelled') return { kind: 'cancelled', message: `stopped waiting for a ${what}` };
    let error: Error;
    if (attempt.kind === 'denied') {
      o.hooks?.onDenied?.(attempt.denied);
      if (attempt.denied.reason !== 'DENY_REASON_COORDINATOR_STOPPING') {
        const reason = denyReason.show(attempt.denied.reason);
        return {
          kind: 'denied',
          message: `denied a ${what} (${reason}): ${attempt.denied.message || 'no reason given'}`,
        };
      }
      error = new Error(`the coordinator is stopping: ${attempt.denied.message}`);
    } else {
      error = attempt.error;
      const code = errorCode(error);
      const diagnosis = o.connection && diagnoseCall(code, errorText(error), o.connection);
      if (diagnosis?.permanent)
        return { kind: 'misconfigured', message: `cannot get a ${what}: ${describeDiagnosis(diagnosis)}` };
      if (code !== undefined && !TRANSIENT.has(code)) {
        return { kind: 'denied', message: `the coordinator refused a ${what}: ${errorText(error)}` };
      }
      if (code !== undefined && UNREACHABLE.has(code) && o.onUnreachable === 'run')
        return { kind: 'run-without-token', error };
      if (attempt.progressed) backoff.reset();
    }
    const now = o.clock.now();
    if (latestStart > 0 && now >= latestStart) {
      return {
        kind: 'skipped',
        message: `skipped: could not get a ${what} before its window closed at ${formatClock(latestStart, now)} (${errorText(error)})`,
      };
    }
    let retryInMs = backoff.next();
    if (latestStart > 0) retryInMs = Math.min(retryInMs, latestStart - now);
    const fields = {
      job: request.job,
      error: errorText(error),
      attempt: backoff.attempts,
      retryIn: formatSpan(retryInMs),
    };
    if (!warned)
      o.log.warn('cannot reach the coordinator to acquire a token; retrying until the window closes', fields);
    else o.log.info('still cannot reach the coordinator to acquire a token; trying again', fields);
    warned = true;
    o.hooks?.onUnreachable?.({ error, attempt: backoff.attempts, retryInMs, giveUpAtUnixMs: latestStart });
    // Retry once more at the latest start exactly: the coordinator answers WINDOW_CLOSED or grants.
    if (!(await sleep(retryInMs, o.signal))) continue; // aborted: the next acquireOnce reports it
  }
}

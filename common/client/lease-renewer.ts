/**
 * Keeping a lease while its command runs: when to renew, when to give up, and the Renewer that does it.
 *
 * Safety rests on the holder's own monotonic clock: when renewals cannot reach the coordinator, the
 * command is stopped before the lease could have expired there, so a partitioned holder is idle by the
 * time the coordinator hands the slot to someone else.
 */
import type { v1 } from '../../proto';
import { errorCode, errorText, LEASE_GONE } from './call-status';
import type { Clock } from '../util/clock';
import { formatClock } from '../util/human';
import { TokenClient, unary, UNARY_DEADLINE_MS } from './connection';
import { formatDuration } from '../util/duration';
import type { Logger } from '../util/log';

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

/** How a lease was lost: `tokenVoid` when the coordinator said so (a release would be refused). */
export interface LeaseLost {
  message: string;
  tokenVoid: boolean;
}

export interface RenewerOptions {
  client: TokenClient;
  /** Monotonic clock reading like Unix ms: the fail-safe deadline is measured on it. */
  clock: Clock;
  log: Logger;
  /** Called after every successful renewal; must not throw. */
  onRenewed?(renewed: v1.RenewResponse__Output): void;
}

/**
 * Keeps a lease alive while the command runs: renews every TTL/3, retries failed renewals quickly, and
 * calls `lost` once when the coordinator refuses a renewal or the fail-safe deadline passes first.
 */
export class Renewer {
  private renewTimer?: NodeJS.Timeout;
  private failSafeTimer?: NodeJS.Timeout;
  private stopped = false;
  private failures = 0;
  private ttlMs: number;

  constructor(
    private readonly o: RenewerOptions,
    private readonly token: v1.Token__Output,
    receivedAt: number,
    private readonly lost: (lost: LeaseLost) => void,
  ) {
    this.ttlMs = token.ttlMs || Math.max(1, token.expiresUnixMs - token.grantedUnixMs);
    this.extend(receivedAt);
  }

  /** No more renewals, and no `lost` call. Safe to call more than once. */
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
      tokenVoid: false,
      message: `could not renew the lease; stopped ${formatDuration(leaseTiming(this.ttlMs).safetyMarginMs)} before it would expire (fail-safe at ${formatClock(deadline, this.o.clock.now())})`,
    });
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const sentAt = this.o.clock.now();
    try {
      // Each attempt is bounded by a third of the TTL, so that a hanging call leaves room for retries.
      const deadlineMs = Math.min(UNARY_DEADLINE_MS, Math.max(250, leaseTiming(this.ttlMs).renewIntervalMs));
      const request = { tokenId: this.token.tokenId, fencing: this.token.fencing };
      const res = await unary<v1.RenewRequest, v1.RenewResponse__Output>(
        this.o.client.Renew.bind(this.o.client),
        request,
        deadlineMs,
      );
      if (this.stopped) return;
      if (this.failures > 0) this.o.log.info('lease renewed again', { failures: this.failures });
      this.failures = 0;
      if (res.ttlMs > 0) this.ttlMs = res.ttlMs;
      this.o.onRenewed?.(res);
      this.o.log.debug('renewed', { tokenId: this.token.tokenId, ttlMs: this.ttlMs });
      this.extend(sentAt);
    } catch (err) {
      if (this.stopped) return;
      const code = errorCode(err);
      if (code !== undefined && LEASE_GONE.has(code)) {
        this.stop();
        this.lost({ tokenVoid: true, message: `lease lost: the coordinator refused renewal (${errorText(err)})` });
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

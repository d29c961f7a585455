/**
 * The daemon's log while a job waits for its slot: a line when it starts waiting, one whenever what it
 * waits for changes, and a reminder every minute while it still waits, so that a log read later shows
 * why a job started late (exec says the same on its terminal; common/backup-run/wait-text.ts words both).
 */
import { describeQueued, queuedKey } from '../../common/backup-run/wait-text';
import { formatSpan } from '../../common/util/human';
import type { Logger } from '../../common/util/log';
import type { Queued__Output } from '../../proto/generated/headroom/v1';

/** How often a job still waiting is logged again. */
export const WAIT_LOG_EVERY_MS = 60_000;

export class WaitLog {
  private latest: Queued__Output | undefined;
  private lastKey = '';
  private since = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `wallNow` is the wall clock the planned start is shown against. */
  constructor(
    private readonly log: Logger,
    private readonly wallNow: () => number = Date.now,
    private readonly everyMs = WAIT_LOG_EVERY_MS,
  ) {}

  /** A queue update from the coordinator. */
  queued(q: Queued__Output): void {
    const now = this.wallNow();
    this.latest = q;
    if (!this.timer) {
      this.since = now;
      this.timer = setInterval(() => this.remind(), this.everyMs);
      this.timer.unref();
    }
    const key = queuedKey(q);
    if (key === this.lastKey) return;
    this.lastKey = key;
    // TARGET_FULL: the room it waits for is on storage every host shares, not on this host.
    this.log.info('waiting for a GUEST token', {
      queue: describeQueued(q, now),
      ...(q.targetFull ? { targetFull: q.targetFull } : {}),
    });
  }

  /** The wait is over (granted, denied, skipped or stopped). */
  end(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private remind(): void {
    if (!this.latest) return;
    const now = this.wallNow();
    this.log.info('still waiting for a GUEST token', {
      waited: formatSpan(now - this.since),
      queue: describeQueued(this.latest, now),
    });
  }
}

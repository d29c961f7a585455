/**
 * Applies the history retention (coordinator.yaml `history`): every few minutes, compacts the store in
 * small batches, yielding to the event loop between them, until nothing more is due. A round that fails
 * (the database cannot be written) is given up and retried at the next one.
 */
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { HistoryRetention, Store } from '../store/store';

const DAY_MS = 86_400_000;
/** Rows per batch: a few milliseconds of SQLite work, so that grants are not held up behind it. */
export const BATCH_ROWS = 500;

export interface HistoryRetentionDeps {
  store: Pick<Store, 'compactHistory'>;
  retention: HistoryRetention;
  clock: Clock;
  log: Logger;
  /** How often a round starts. Default 5 minutes. */
  intervalMs?: number;
  /** How long ended request ids are remembered (the lessor's endedRetentionMs). Default 24 h. */
  endedRetentionMs?: number;
}

export class HistoryRetentionTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly deps: HistoryRetentionDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.round(), this.deps.intervalMs ?? 300_000);
    this.timer.unref();
    void this.round();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** One round, batch after batch; resolves when it is done (or stopped). Rounds do not overlap. */
  round(): Promise<void> {
    this.running ??= this.compact().finally(() => (this.running = undefined));
    return this.running;
  }

  private async compact(): Promise<void> {
    const { store, retention, clock, log } = this.deps;
    const now = clock.now();
    const step = {
      before: now - retention.keepDays * DAY_MS,
      maxRows: retention.maxRows,
      keepEndedSince: now - (this.deps.endedRetentionMs ?? DAY_MS),
      batch: BATCH_ROWS,
    };
    const removed = { history: 0, tokens: 0 };
    try {
      while (!this.stopped) {
        const { history, tokens } = await store.compactHistory(step);
        removed.history += history;
        removed.tokens += tokens;
        if (history === 0 && tokens === 0) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (e) {
      log.warn('history retention failed; retried at the next round', { error: (e as Error).message });
    }
    if (removed.history + removed.tokens > 0)
      log.info('history compacted', { historyRows: removed.history, endedTokens: removed.tokens });
  }
}

/**
 * Compaction of the history and of the ended tokens (SQLite), one small batch per call so that the caller
 * (service/history-retention.ts) can spread the work over many turns of the event loop. What is removed:
 * history older than the retention or beyond its row cap, and ended tokens older than the retention. What
 * is never removed, whatever its age:
 *  - the history of a token still active, and the token itself;
 *  - ended tokens whose request id a retry may still present (`keepEndedSince`, the lessor's window);
 *  - for each host, VM, job and kind, its newest ended run and its newest successful one: the last success
 *    (metrics, alerts) and the planner's next run are computed from them.
 * Deleted pages go to SQLite's free list and are reused, so the file stops growing rather than shrinks.
 */
import type Database from 'better-sqlite3';

export interface CompactionStep {
  /** Remove what ended, or was recorded, before this (Clock ms). */
  before: number;
  /** Keep at most this many history rows (ended tokens are bounded by age: see keepEndedSince). */
  maxRows: number;
  /** Ended tokens at or after this are kept: their request ids must not grant twice. */
  keepEndedSince: number;
  /** Rows removed per table at most, per call. */
  batch: number;
}

export class HistoryCompaction {
  private readonly statements;

  constructor(db: Database.Database) {
    // The newest runs of each VM's job are found through this index, not by scanning the table.
    db.exec('CREATE INDEX IF NOT EXISTS tokens_by_run ON tokens (host, vm, job, kind, ended_at)');
    this.statements = {
      seqRange: db.prepare('SELECT MIN(seq) AS low, MAX(seq) AS high FROM history'),
      atFrom: db.prepare('SELECT at FROM history WHERE seq >= ? ORDER BY seq LIMIT 1').pluck(),
      deleteHistory: db.prepare(
        `DELETE FROM history WHERE seq IN (
           SELECT seq FROM history
           WHERE seq < @bound AND token_id NOT IN (SELECT token_id FROM tokens WHERE state = 'active')
           ORDER BY seq LIMIT @batch)`,
      ),
      // A run may go once a newer successful run of its VM's job exists, or, if it failed, once any newer
      // run does: what remains per job is its newest run and its newest success. No ORDER BY: any rows
      // below the bound will do, and the index range is read only until a batch is found.
      deleteTokens: db.prepare(
        `DELETE FROM tokens WHERE token_id IN (
           SELECT t.token_id FROM tokens t
           WHERE t.state IN ('released', 'expired', 'revoked') AND t.ended_at < @bound
             AND EXISTS (
               SELECT 1 FROM tokens n
               WHERE n.host = t.host AND n.vm = t.vm AND n.job = t.job AND n.kind = t.kind
                 AND n.ended_at > t.ended_at AND n.state != 'active'
                 AND (json_extract(n.outcome, '$.success') = 1 OR json_extract(t.outcome, '$.success') IS NOT 1))
           LIMIT @batch)`,
      ),
    };
  }

  /**
   * The first seq to keep. Rows are only ever deleted oldest first, so the newest rows' seqs are contiguous
   * (the cap is MAX(seq) - maxRows) and their times rise with seq (the age bound is a binary search): a
   * few index lookups, however large the table.
   */
  private historyBound(step: CompactionStep): number {
    const { low, high } = this.statements.seqRange.get() as { low: number | null; high: number | null };
    if (low === null || high === null) return 0;
    let [lo, hi] = [low, high + 1];
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const at = this.statements.atFrom.get(mid) as number;
      if (at < step.before) lo = mid + 1;
      else hi = mid;
    }
    return Math.max(lo, high - step.maxRows + 1);
  }

  /** One batch. Returns how many rows it removed from each table: 0 and 0 when nothing is left to remove. */
  step(step: CompactionStep): { history: number; tokens: number } {
    const s = this.statements;
    const history = s.deleteHistory.run({ bound: this.historyBound(step), batch: step.batch }).changes;
    const bound = Math.min(step.before, step.keepEndedSince);
    const tokens = s.deleteTokens.run({ bound, batch: step.batch }).changes;
    return { history, tokens };
  }
}

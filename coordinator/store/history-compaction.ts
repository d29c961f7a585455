/**
 * Compaction of the history and of the ended tokens (SQLite), one small batch per call so that the caller
 * (service/history-retention.ts) can spread the work over many turns of the event loop. What is removed:
 * history older than the retention (or beyond its row cap), and ended tokens likewise. What is never
 * removed, whatever their age:
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
  /** Keep at most this many history rows, and this many ended tokens. */
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
      // The seq of the newest `maxRows + 1`-th row: it and everything older is over the cap.
      historyCapSeq: db.prepare('SELECT seq FROM history ORDER BY seq DESC LIMIT 1 OFFSET ?').pluck(),
      // Cheap once compacted: the scan from the oldest row stops at the first one young enough.
      historyAgeSeq: db.prepare('SELECT seq FROM history WHERE at >= ? ORDER BY seq LIMIT 1').pluck(),
      deleteHistory: db.prepare(
        `DELETE FROM history WHERE seq IN (
           SELECT seq FROM history
           WHERE seq < @bound AND token_id NOT IN (SELECT token_id FROM tokens WHERE state = 'active')
           ORDER BY seq LIMIT @batch)`,
      ),
      tokenCapEnd: db
        .prepare("SELECT ended_at FROM tokens WHERE state != 'active' ORDER BY ended_at DESC LIMIT 1 OFFSET ?")
        .pluck(),
      // A run may go once a newer successful run of its VM's job exists, or, if it failed, once any newer
      // run does: what remains per job is its newest run and its newest success.
      deleteTokens: db.prepare(
        `DELETE FROM tokens WHERE token_id IN (
           SELECT t.token_id FROM tokens t
           WHERE t.state != 'active' AND t.ended_at < @bound
             AND EXISTS (
               SELECT 1 FROM tokens n
               WHERE n.host = t.host AND n.vm = t.vm AND n.job = t.job AND n.kind = t.kind
                 AND n.ended_at > t.ended_at AND n.state != 'active'
                 AND (json_extract(n.outcome, '$.success') = 1 OR json_extract(t.outcome, '$.success') IS NOT 1))
           ORDER BY t.ended_at LIMIT @batch)`,
      ),
    };
  }

  /** One batch. Returns how many rows it removed from each table: 0 and 0 when nothing is left to remove. */
  step(step: CompactionStep): { history: number; tokens: number } {
    const s = this.statements;
    const ageSeq = (s.historyAgeSeq.get(step.before) as number | undefined) ?? Number.MAX_SAFE_INTEGER;
    const capSeq = ((s.historyCapSeq.get(step.maxRows) as number | undefined) ?? 0) + 1;
    const history = s.deleteHistory.run({ bound: Math.max(ageSeq, capSeq), batch: step.batch }).changes;
    const capEnd = ((s.tokenCapEnd.get(step.maxRows) as number | undefined) ?? -1) + 1;
    const bound = Math.min(Math.max(step.before, capEnd), step.keepEndedSince);
    const tokens = s.deleteTokens.run({ bound, batch: step.batch }).changes;
    return { history, tokens };
  }
}

/**
 * The grant benchmark's durability check: after a phase, every token id the clients received is looked
 * up among the GRANTED rows of the coordinator's SQLite history (opened read-only, next to the running
 * coordinator), and the phase's RELEASED rows and still-active tokens are counted.
 */
import Database from 'better-sqlite3';
import type { WorkerPhaseResult } from './grant-protocol';
import type { DurabilityCheck } from './grant-report';

/** Compares the tokens clients received in a phase with the GRANTED/RELEASED rows of its request ids. */
export function checkDurability(dbPath: string, tag: string, results: WorkerPhaseResult[]): DurabilityCheck {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const like = `bench-${tag}-%`;
    const granted = new Set(
      (
        db.prepare("SELECT token_id FROM history WHERE type = 'GRANTED' AND request_id LIKE ?").all(like) as {
          token_id: string;
        }[]
      ).map((r) => r.token_id),
    );
    const historyReleased = (
      db.prepare("SELECT COUNT(*) AS n FROM history WHERE type = 'RELEASED' AND request_id LIKE ?").get(like) as {
        n: number;
      }
    ).n;
    const activeAfter = (
      db.prepare("SELECT COUNT(*) AS n FROM tokens WHERE state = 'active' AND request_id LIKE ?").get(like) as {
        n: number;
      }
    ).n;
    const received = new Set(results.flatMap((r) => r.tokenIds));
    let receivedNotInHistory = 0;
    for (const id of received) if (!granted.has(id)) receivedNotInHistory++;
    let inHistoryNotReceived = 0;
    for (const id of granted) if (!received.has(id)) inHistoryNotReceived++;
    return {
      clientGrants: results.reduce((s, r) => s + r.tokenIds.length, 0),
      historyGranted: granted.size,
      receivedNotInHistory,
      inHistoryNotReceived,
      clientReleases: results.reduce((s, r) => s + r.released, 0),
      historyReleased,
      activeAfter,
    };
  } finally {
    db.close();
  }
}

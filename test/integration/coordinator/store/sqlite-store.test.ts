import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { Lease, Outcome } from '../../../../coordinator/domain/lease';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import { SqliteStore } from '../../../../coordinator/store/sqlite-store';
import { tempDir } from '../../../helpers/coordinator-process';

const T0 = Date.UTC(2026, 10, 29, 1, 0, 0);

function lease(n: number, host: string, vm: string, grantedAt: number): Lease {
  return {
    tokenId: `t${n}`,
    requestId: `r${n}`,
    fencing: n,
    kind: 'GUEST',
    host,
    vm,
    job: 'nightly',
    priority: 0,
    ttlMs: 30_000,
    grantedAt,
    expiresAt: grantedAt + 30_000,
    slot: { start: grantedAt, expectedEnd: grantedAt + 60_000, windowEnd: 0 },
    budget: { ioBytesPerSec: 0, cpuPercent: 0 },
  };
}

const outcome = (durationMs: number, success = true): Outcome => ({
  success,
  bytes: 10,
  durationMs,
  exitCode: success ? 0 : 1,
  message: 'm',
  consistency: 'CRASH',
});

describe('SqliteStore: ended runs (what the planner learns durations from)', () => {
  it("answers a host's most recently ended tokens, oldest first, with their outcomes as numbers, after a reopen too", () => {
    const file = path.join(tempDir(), 'headroom.db');
    const store = new SqliteStore(file);
    const events: LessorEvent[] = [];
    const a = lease(1, 'host-a', 'vm-1', T0);
    const b = lease(2, 'host-a', 'vm-2', T0 + 1_000);
    const c = lease(3, 'host-b', 'vm-3', T0 + 2_000);
    const d = lease(4, 'host-a', 'vm-1', T0 + 3_000);
    const running = lease(5, 'host-a', 'vm-2', T0 + 4_000);
    for (const l of [a, b, c, d, running]) events.push({ type: 'granted', at: l.grantedAt, lease: l });
    events.push(
      { type: 'released', at: T0 + 10_000, lease: a, outcome: outcome(10_000) },
      { type: 'expired', at: T0 + 11_000, lease: b },
      { type: 'released', at: T0 + 12_000, lease: c, outcome: outcome(10_000) },
      { type: 'released', at: T0 + 13_000, lease: d, outcome: outcome(10_000, false) },
    );
    store.commitSync(events);
    store.close();

    const reopened = new SqliteStore(file);
    const runs = reopened.endedRuns('host-a', 10);
    assert.deepEqual(runs, [
      {
        kind: 'GUEST',
        vm: 'vm-1',
        job: 'nightly',
        grantedAt: T0,
        endedAt: T0 + 10_000,
        state: 'released',
        outcome: outcome(10_000),
      },
      { kind: 'GUEST', vm: 'vm-2', job: 'nightly', grantedAt: T0 + 1_000, endedAt: T0 + 11_000, state: 'expired' },
      {
        kind: 'GUEST',
        vm: 'vm-1',
        job: 'nightly',
        grantedAt: T0 + 3_000,
        endedAt: T0 + 13_000,
        state: 'released',
        outcome: outcome(10_000, false),
      },
    ]);
    assert.deepEqual(
      reopened.endedRuns('host-a', 2).map((r) => r.endedAt),
      [T0 + 11_000, T0 + 13_000],
      'the newest two, oldest first',
    );
    assert.deepEqual(reopened.endedRuns('host-c', 10), []);
    reopened.close();
  });
});

describe('SqliteStore: shared targets', () => {
  it("keeps an active token's shared target across a reopen, and opens a file made before targets existed", () => {
    const file = path.join(tempDir(), 'headroom.db');
    const store = new SqliteStore(file);
    const onTarget = { ...lease(1, 'host-a', 'vm-1', T0), target: 'pbs1' };
    const plain = lease(2, 'host-b', 'vm-2', T0);
    store.commitSync([
      { type: 'host-added', at: T0, host: 'host-a', policy: DEFAULT_POLICY },
      { type: 'host-added', at: T0, host: 'host-b', policy: DEFAULT_POLICY },
      { type: 'granted', at: T0, lease: onTarget },
      { type: 'granted', at: T0, lease: plain },
    ]);
    store.close();
    const reopened = new SqliteStore(file);
    const targets = reopened.loadSync(0).leases.map((l) => [l.tokenId, l.target]);
    reopened.close();
    assert.deepEqual(targets, [
      ['t1', 'pbs1'],
      ['t2', undefined],
    ]);

    // A version 1 file: its tokens table has no target column.
    const old = path.join(tempDir(), 'v1.db');
    const db = new Database(old);
    db.exec(
      `CREATE TABLE tokens (token_id TEXT PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, host TEXT NOT NULL,
         vm TEXT NOT NULL, job TEXT NOT NULL, kind TEXT NOT NULL, fencing INTEGER NOT NULL, priority INTEGER NOT NULL,
         ttl_ms INTEGER NOT NULL, granted_at INTEGER NOT NULL, slot_start INTEGER NOT NULL,
         slot_expected_end INTEGER NOT NULL, window_end INTEGER NOT NULL, budget TEXT NOT NULL, state TEXT NOT NULL,
         ended_at INTEGER, outcome TEXT);
       INSERT INTO tokens VALUES ('t9', 'r9', 'host-a', 'vm-9', 'nightly', 'GUEST', 9, 0, 30000, ${T0}, ${T0},
         ${T0 + 60_000}, 0, '{"ioBytesPerSec":0,"cpuPercent":0}', 'active', NULL, NULL);
       PRAGMA user_version = 1;`,
    );
    db.close();
    const migrated = new SqliteStore(old);
    migrated.commitSync([{ type: 'granted', at: T0, lease: { ...lease(10, 'host-a', 'vm-10', T0), target: 'pbs1' } }]);
    const loaded = migrated.loadSync(0).leases.map((l) => [l.tokenId, l.target]);
    migrated.close();
    assert.deepEqual(loaded, [
      ['t9', undefined],
      ['t10', 'pbs1'],
    ]);
  });
});

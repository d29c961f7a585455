import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { Lease, Outcome } from '../../../../coordinator/domain/lease';
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
    store.commit(events);
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

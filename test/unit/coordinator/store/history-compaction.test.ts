/** History retention on a real SQLite file: what goes, and what stays whatever its age; and a VM's ended runs. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Lease } from '../../../../coordinator/domain/lease';
import { SqliteStore } from '../../../../coordinator/store/sqlite-store';
import { newLessor, req } from '../domain/fixtures';

const DAY = 86_400_000;

/** A store and a lessor writing to it, with one run of vm1 a day for `days` days, and vm2's token held throughout. */
function churn(days: number, failFrom = days) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-compaction-'));
  const store = new SqliteStore(path.join(dir, 'h.db'), 'normal');
  const { clock, lessor } = newLessor();
  const commit = (events: Parameters<SqliteStore['commit']>[0]) => store.commitSync(events);
  const grant = (vm: string): Lease => {
    const { result, events } = lessor.acquire(req({ kind: 'GUEST', vm }));
    commit(events);
    assert.equal(result.status, 'granted');
    return (result as { lease: Lease }).lease;
  };
  commit(lessor.ensureHost('h1'));
  const held = grant('vm2');
  for (let day = 0; day < days; day++) {
    const run = grant('vm1');
    clock.advance(3_600_000);
    const success = day < failFrom;
    commit(
      lessor.release(run.tokenId, run.fencing, {
        success,
        durationMs: 3_600_000,
        exitCode: success ? 0 : 1,
        message: '',
      }),
    );
    commit(lessor.renew(held.tokenId, held.fencing).events);
    clock.advance(DAY - 3_600_000);
  }
  return { store, clock, held };
}

async function compactAll(store: SqliteStore, step: Parameters<SqliteStore['compactHistory']>[0]) {
  let removed = { history: 0, tokens: 0 };
  for (;;) {
    const r = await store.compactHistory(step);
    if (r.history + r.tokens === 0) return removed;
    removed = { history: removed.history + r.history, tokens: removed.tokens + r.tokens };
  }
}

describe('history compaction', async () => {
  it('removes history and ended tokens older than the retention, keeping the active token, the newest run and the newest success', async () => {
    const { store, clock, held } = churn(20, 12);
    const now = clock.now();
    const removed = await compactAll(store, {
      before: now - 5 * DAY,
      maxRows: 1_000_000,
      keepEndedSince: now - DAY,
      batch: 7,
    });
    assert.ok(removed.history > 0 && removed.tokens > 0, JSON.stringify(removed));

    const history = await store.history({ limit: 10_000 });
    assert.ok(
      history.some((r) => r.tokenId === held.tokenId && r.type === 'GRANTED'),
      "the active token's grant stays",
    );
    const oldOthers = history.filter((r) => r.at < now - 5 * DAY && r.tokenId !== held.tokenId);
    assert.deepEqual(oldOthers, [], 'nothing else older than the retention');

    // Days 12 to 19 failed: the newest success (day 11) stays, and the failures within the retention.
    const runs = store.endedRuns('h1', 100).filter((r) => r.vm === 'vm1');
    assert.equal(runs.at(-1)!.outcome?.success, false, 'the newest run stays');
    const [last] = store.lastSuccesses().filter((s) => s.vm === 'vm1');
    assert.ok(last && last.endedAt < now - 5 * DAY, 'the newest success stays though older than the retention');
    assert.deepEqual(
      runs.map((r) => Math.floor((r.grantedAt - runs[0].grantedAt) / DAY)),
      [0, 4, 5, 6, 7, 8],
      'of the runs older than the retention, only the newest success stays',
    );
    assert.deepEqual(
      store.loadSync(now - DAY).leases.map((l) => l.tokenId),
      [held.tokenId],
    );
    store.close();
  });

  it('caps the history at maxRows, and never removes the ended request ids a retry may still present', async () => {
    const { store, clock } = churn(30);
    const now = clock.now();
    await compactAll(store, { before: now - 365 * DAY, maxRows: 10, keepEndedSince: now - 3 * DAY, batch: 4 });
    const history = await store.history({ limit: 10_000 });
    // The active token's rows (a grant and a renewal a day) are kept beyond the cap.
    assert.equal(history.filter((r) => r.vm === 'vm1').length <= 10, true, `${history.length} rows`);
    const ended = store.loadSync(now - 3 * DAY).ended;
    assert.equal(ended.length, 3, 'the ended tokens of the last 3 days stay for their request ids');
    store.close();
  });

  it('removes nothing when nothing is due', async () => {
    const { store, clock } = churn(3);
    const now = clock.now();
    assert.deepEqual(
      await compactAll(store, { before: now - 30 * DAY, maxRows: 1_000_000, keepEndedSince: now - DAY, batch: 100 }),
      {
        history: 0,
        tokens: 0,
      },
    );
    store.close();
  });
});

describe("a VM's ended runs", () => {
  it('are its newest ended tokens, oldest first, with their outcome; a held token is not one', () => {
    const { store } = churn(4, 3);
    const runs = store.vmEndedRuns('vm1', 2);
    assert.deepEqual(runs, store.endedRuns('h1', 100).slice(-2));
    assert.deepEqual(
      runs.map((r) => [r.vm, r.state, r.outcome?.success]),
      [
        ['vm1', 'released', true],
        ['vm1', 'released', false],
      ],
    );
    assert.deepEqual(store.vmEndedRuns('vm2', 10), []);
    store.close();
  });
});

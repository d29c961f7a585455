/** The retention task: batches until nothing is due, with the policy turned into a step; a failed round is retried later. */
import { strict as assert } from 'node:assert';
import { ManualClock } from '../../../../common/util/clock';
import { createLogger } from '../../../../common/util/log';
import { BATCH_ROWS, HistoryRetentionTask } from '../../../../coordinator/service/history-retention';
import type { CompactionStep } from '../../../../coordinator/store/history-compaction';
import { T0 } from '../domain/fixtures';

const DAY = 86_400_000;

describe('history retention task', () => {
  it('compacts batch after batch until nothing is due, asking for what the policy allows', async () => {
    const steps: CompactionStep[] = [];
    const left = [3, 3, 0];
    const task = new HistoryRetentionTask({
      store: {
        compactHistory: async (step) => {
          steps.push(step);
          const n = left.shift() ?? 0;
          return { history: n, tokens: 0 };
        },
      },
      retention: { keepDays: 7, maxRows: 5_000 },
      clock: new ManualClock(T0),
      log: createLogger({ level: 'error' }),
    });
    await task.round();
    assert.equal(steps.length, 3, 'until a batch removed nothing');
    assert.deepEqual(steps[0], { before: T0 - 7 * DAY, maxRows: 5_000, keepEndedSince: T0 - DAY, batch: BATCH_ROWS });
  });

  it('gives up a round whose store fails, and runs the next one', async () => {
    let fail = true;
    let calls = 0;
    const warnings: string[] = [];
    const log = createLogger({ level: 'error' });
    const task = new HistoryRetentionTask({
      store: {
        compactHistory: async () => {
          calls++;
          if (fail) throw new Error('SQLITE_READONLY');
          return { history: 0, tokens: 0 };
        },
      },
      retention: { keepDays: 30, maxRows: 1_000_000 },
      clock: new ManualClock(T0),
      log: { ...log, warn: (message: string) => warnings.push(message) } as typeof log,
    });
    await task.round();
    assert.deepEqual(warnings, ['history retention failed; retried at the next round']);
    fail = false;
    await task.round();
    assert.equal(calls, 2);
  });
});

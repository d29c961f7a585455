/** `backup start|cancel --wait`: how the wait follows a run that the coordinator's list drops for a moment. */
import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { MISSING_GRACE_MS, waitForEnd } from '../../../../ctl/commands/backup';
import type { BackupRun__Output } from '../../../../proto/generated/headroom/v1';

const run = (state: BackupRun__Output['state']) => ({ runId: 'r1', vm: 'vm-g', state }) as BackupRun__Output;

/** A coordinator whose ListBackupRuns answers each list in turn, then the last one forever. */
function coordinator(lists: BackupRun__Output[][], clock: sinon.SinonFakeTimers) {
  let asked = 0;
  return {
    asked: () => asked,
    ctx: {
      now: () => clock.now,
      admin: (async () => ({ runs: lists[Math.min(asked++, lists.length - 1)] })) as never,
    },
  };
}

describe('ctl backup: waiting for a run to end', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers({ now: 1_000_000 })));
  afterEach(() => clock.restore());

  it('rides out the run missing from the list for a moment (a cluster member registering anew)', async () => {
    const c = coordinator([[run('BACKUP_RUN_STATE_RUNNING')], [], [], [run('BACKUP_RUN_STATE_CANCELLED')]], clock);
    const ended = waitForEnd(c.ctx, 'vm-g', 'r1');
    await clock.tickAsync(5_000);
    assert.equal((await ended).state, 'BACKUP_RUN_STATE_CANCELLED');
    assert.equal(c.asked(), 4);
  });

  it('says the coordinator no longer knows the run once it has been missing for the grace period', async () => {
    const c = coordinator([[run('BACKUP_RUN_STATE_RUNNING')], []], clock);
    const ended = waitForEnd(c.ctx, 'vm-g', 'r1');
    const failed = assert.rejects(ended, /no longer knows run r1/);
    await clock.tickAsync(MISSING_GRACE_MS + 1_000);
    await failed;
  });
});

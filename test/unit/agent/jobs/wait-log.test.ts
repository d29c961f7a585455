import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { WAIT_LOG_EVERY_MS, WaitLog } from '../../../../agent/jobs/wait-log';
import type { Queued__Output } from '../../../../proto/generated/headroom/v1';
import { captureLog } from '../../common/backup-run/guarded-run-fakes';

describe('WaitLog', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers({ now: new Date(2026, 0, 15, 12, 0, 0).getTime() })));
  afterEach(() => clock.restore());

  const queued = (over: Partial<Queued__Output> = {}): Queued__Output => ({
    position: 1,
    targetFull: '',
    estimatedStartUnixMs: new Date(2026, 0, 15, 12, 5, 0).getTime(),
    waitingFor: 'a HYPERVISOR backup of vm-1 holds the host',
    ...over,
  });

  it('logs when a job starts waiting, when what it waits for changes, and every minute until the wait ends', async () => {
    const logs = captureLog();
    const wait = new WaitLog(logs.log);
    wait.queued(queued());
    wait.queued(queued()); // the coordinator repeating itself: nothing new
    await clock.tickAsync(WAIT_LOG_EVERY_MS);
    wait.queued(queued({ position: 2 }));
    await clock.tickAsync(WAIT_LOG_EVERY_MS);
    wait.end();
    await clock.tickAsync(5 * WAIT_LOG_EVERY_MS);
    assert.deepEqual(
      logs.lines.map((l) => [l.msg, l.waited, l.queue]),
      [
        [
          'waiting for a GUEST token',
          undefined,
          'queue position 1, a HYPERVISOR backup of vm-1 holds the host; planned start 12:05:00 (in 5m)',
        ],
        [
          'still waiting for a GUEST token',
          '1m',
          'queue position 1, a HYPERVISOR backup of vm-1 holds the host; planned start 12:05:00 (in 4m)',
        ],
        [
          'waiting for a GUEST token',
          undefined,
          'queue position 2, a HYPERVISOR backup of vm-1 holds the host; planned start 12:05:00 (in 4m)',
        ],
        [
          'still waiting for a GUEST token',
          '2m',
          'queue position 2, a HYPERVISOR backup of vm-1 holds the host; planned start 12:05:00 (in 3m)',
        ],
      ],
    );
  });
});

import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { signalsMechanism, SignalsOptions } from '../../../../../common/backup-run/budget/signals';
import { tempDir } from '../../../../helpers/coordinator-process';
import { captureLog } from '../guarded-run-fakes';
import { fakeSysBlock } from './cgroup-tree';
import { FakeProc } from './fake-proc';

/** A group 4242 (two processes, the second with two threads) and its watchdog 4243, with every signal, nice and ionice recorded. */
function setup(o: Partial<SignalsOptions> = {}) {
  const proc = new FakeProc()
    .set(4242, { pgrp: 4242, ticks: 0 })
    .set(4244, { pgrp: 4242, threads: [4244, 4245] })
    .set(4243, { pgrp: 4242 });
  const signals: string[] = [];
  const nices: string[] = [];
  const ionices: string[] = [];
  const mechanism = signalsMechanism({
    log: captureLog().log,
    proc,
    kill: (pid, signal) => signals.push(`${signal} ${pid}`),
    setNice: (tid, nice) => nices.push(`${tid}=${nice}`),
    getNice: () => 0,
    ionice: (pgid, lowest) => ionices.push(`${pgid} ${lowest ? 'best-effort 7' : 'default'}`),
    cores: 2,
    sysBlock: fakeSysBlock(tempDir()),
    ...o,
  });
  const enforcer = mechanism.enforce({ pgid: 4242, exempt: () => 4243 });
  return { proc, signals, nices, ionices, enforcer };
}

describe('signals enforcement', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })));
  afterEach(() => clock.restore());

  it('says what it cannot do: no byte rate, and an I/O scheduler that ignores priorities', () => {
    const { enforcer } = setup();
    assert.equal(enforcer.enforcement, 'SIGNALS');
    assert.equal(
      enforcer.detail,
      'signals on process group 4242: nice 19 and SIGSTOP/SIGCONT duty cycles for CPU, SIGSTOP to pause; I/O: ionice best-effort 7 only, no byte-rate limit without cgroups, which the I/O scheduler of vda (mq-deadline) ignores',
    );
    assert.match(
      setup({ ionice: undefined }).enforcer.detail,
      /; I\/O not limited: no byte-rate limit without cgroups, and ionice is not installed$/,
    );
  });

  it("renices every thread of the group but the watchdog, lowers its I/O priority, and duty-cycles it under the guest's cores", () => {
    const { signals, nices, ionices, enforcer } = setup();
    enforcer.apply({ cpuPercent: 50, ioBytesPerSec: 1e6 });
    assert.deepEqual(nices, ['4242=19', '4244=19', '4245=19']);
    assert.deepEqual(ionices, ['4242 best-effort 7']);
    clock.tick(100);
    // Half of each period: stopped at 50 ms (the watchdog let go at once), running again at 100 ms.
    assert.deepEqual(signals, ['SIGSTOP -4242', 'SIGCONT 4243', 'SIGCONT -4242']);
    enforcer.apply({ cpuPercent: 0, ioBytesPerSec: 0 });
    assert.deepEqual(nices.slice(3), ['4242=0', '4244=0', '4245=0']);
    assert.deepEqual(ionices.slice(1), ['4242 default']);
    clock.tick(1_000);
    assert.equal(signals.length, 3, 'no cycling without a CPU limit');
  });

  it('does not cycle a budget of every core', () => {
    const { signals, enforcer } = setup();
    enforcer.apply({ cpuPercent: 200, ioBytesPerSec: 0 });
    clock.tick(1_000);
    assert.deepEqual(signals, []);
  });

  it('pauses with SIGSTOP (the watchdog let go), stays stopped, and resumes its cycle', () => {
    const { signals, enforcer } = setup();
    enforcer.apply({ cpuPercent: 50, ioBytesPerSec: 0 });
    enforcer.pause();
    assert.deepEqual(signals, ['SIGSTOP -4242', 'SIGCONT 4243']);
    clock.tick(1_000);
    assert.equal(signals.length, 2, 'no SIGCONT while paused');
    enforcer.resume();
    clock.tick(50);
    assert.deepEqual(signals.slice(2), ['SIGCONT -4242', 'SIGSTOP -4242', 'SIGCONT 4243']);
  });

  it('lets a paused or cycling group go for good on release', () => {
    const { signals, enforcer } = setup();
    enforcer.apply({ cpuPercent: 10, ioBytesPerSec: 0 });
    enforcer.pause();
    enforcer.release();
    assert.equal(signals[signals.length - 1], 'SIGCONT -4242');
    const count = signals.length;
    clock.tick(1_000);
    assert.equal(signals.length, count);
  });

  it("counts the group's CPU from /proc, the watchdog's not", () => {
    const { proc, enforcer } = setup();
    proc.set(4242, { pgrp: 4242, ticks: 150 }).set(4243, { pgrp: 4242, ticks: 1000 });
    assert.deepEqual(enforcer.usage(), { cpuSeconds: 1.5, ioBytes: 0 });
  });
});

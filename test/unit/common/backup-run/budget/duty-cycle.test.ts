import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { DutyCycle, dutyFraction } from '../../../../../common/backup-run/budget/duty-cycle';

describe('SIGSTOP/SIGCONT duty cycles', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })));
  afterEach(() => clock.restore());

  it('runs a share of each period that gives the budget on the cores the group keeps busy', () => {
    assert.equal(dutyFraction(20, 1), 0.2);
    assert.equal(dutyFraction(20, 2), 0.1);
    assert.equal(dutyFraction(50, 0.25), 1, 'a group mostly waiting for I/O runs freely');
    assert.equal(dutyFraction(0.5, 1), 0.02, 'never shorter than the timers can time');
    assert.equal(dutyFraction(0, 1), 1, '0 is no limit');
  });

  /** A group that keeps `cores` busy while it runs; records when it was stopped and let go. */
  function group(cores: number) {
    const events: [number, boolean][] = [];
    let cpu = 0;
    let running = true;
    let since = 0;
    const account = () => {
      if (running) cpu += ((performance.now() - since) / 1000) * cores;
      since = performance.now();
    };
    const cycle = new DutyCycle({
      setRunning: (r) => {
        account();
        running = r;
        events.push([performance.now(), r]);
      },
      cpuSeconds: () => {
        account();
        return cpu;
      },
    });
    return { cycle, events, cpu: () => (account(), cpu) };
  }

  it('stops a one-core group for 80 ms of every 100 at 20 %, and lets it run when stopped', () => {
    const g = group(1);
    g.cycle.start(20);
    clock.tick(300);
    assert.deepEqual(g.events.slice(0, 6), [
      [20, false],
      [100, true],
      [120, false],
      [200, true],
      [220, false],
      [300, true],
    ]);
    g.cycle.stop();
    assert.deepEqual(g.events[g.events.length - 1][1], true);
    const count = g.events.length;
    clock.tick(1_000);
    assert.equal(g.events.length, count, 'no more signals once stopped');
  });

  it('shortens the run phases once it measures that the group keeps two cores busy', () => {
    const g = group(2);
    g.cycle.start(20);
    assert.equal(g.cycle.duty, 0.2);
    clock.tick(10_000);
    assert.ok(Math.abs(g.cycle.duty - 0.1) < 0.005, `duty ${g.cycle.duty}`);
    const before = g.cpu();
    clock.tick(10_000);
    const percentOfOneCore = ((g.cpu() - before) / 10) * 100;
    assert.ok(Math.abs(percentOfOneCore - 20) < 1, `${percentOfOneCore} % of a core`);
    g.cycle.stop();
  });

  it('takes a new target from the next period on, without starting over', () => {
    const g = group(1);
    g.cycle.start(50);
    clock.tick(120);
    g.cycle.start(10);
    clock.tick(100);
    assert.deepEqual(g.events, [
      [50, false],
      [100, true],
      [150, false],
      [200, true],
      [210, false],
    ]);
    g.cycle.stop();
  });
});

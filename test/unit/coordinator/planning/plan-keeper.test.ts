import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { createLogger } from '../../../../common/util/log';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import type { PlannedRun } from '../../../../coordinator/domain/start-gate';
import { PlanKeeper, type PlanKeeperDeps } from '../../../../coordinator/planning/plan-keeper';
import type { PlanView, PlanViewInput } from '../../../../coordinator/planning/plan-view';

const HOST = 'host-a';

/** A plan view with one slot starting at `start`, and these runs left out for room. */
function view(start: number, noRoom: string[] = []): PlanView {
  const slot = {
    id: `vm-1/nightly@${start}`,
    vm: 'vm-1',
    job: 'nightly',
    kind: 'GUEST' as const,
    start,
    end: start + 1,
    earliestStart: start,
    windowEnd: start + 10,
  };
  return {
    now: 0,
    horizonEnd: 1,
    budget: { ioBytesPerSec: 0, cpuPercent: 0 },
    slots: [slot],
    unplaced: [],
    noRoom,
    phases: [],
  };
}

/** A keeper whose planning waits until the test answers each call. */
function keeper(planView?: PlanKeeperDeps['planView']) {
  const calls: { input: PlanViewInput; answer: (v: PlanView) => void; fail: (e: Error) => void }[] = [];
  const handed: PlannedRun[][] = [];
  const logged: string[] = [];
  const listeners: Array<(events: unknown[]) => void> = [];
  const coordinator = {
    defaultHost: HOST,
    state: { hostNames: () => [HOST], host: () => ({ policy: { ...DEFAULT_POLICY } }), activeLeases: () => [] },
    endedRuns: () => [],
    setPlan: async (_host: string, runs: PlannedRun[]) => void handed.push(runs),
    onCommitted: (listener: (events: unknown[]) => void) => {
      listeners.push(listener);
      return () => undefined;
    },
  } as unknown as PlanKeeperDeps['coordinator'];
  const job = {
    name: 'nightly',
    schedule: '0 2 * * *',
    windowMs: 3_600_000,
    expectedDurationMs: 60_000,
    declaredCost: null,
    priority: 0,
  };
  const registry = { list: () => [{ record: { vm: 'vm-1', jobs: [job] } }] } as unknown as PlanKeeperDeps['registry'];
  const plans = new PlanKeeper({
    coordinator,
    registry,
    hypervisorJobs: () => [],
    clock: { now: () => Date.now() },
    log: createLogger({ level: 'error', write: (line) => logged.push(line) }),
    plan: (input) => new Promise<PlanView>((answer, fail) => calls.push({ input, answer, fail })),
    planView,
  });
  /** As the lessor tells of committed events. */
  const commit = (...events: unknown[]) => listeners.forEach((l) => l(events));
  return { plans, calls, handed, logged, commit };
}

describe('PlanKeeper', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers()));
  afterEach(() => clock.restore());

  it('hands each plan to the lessor when it comes back, and follows the newest', async () => {
    const { plans, calls, handed } = keeper();
    plans.start();
    await clock.tickAsync(0);
    assert.equal(calls.length, 1);
    assert.equal(handed.length, 0, 'nothing is handed on before the plan is made');
    calls[0].answer(view(5));
    await clock.tickAsync(0);
    assert.deepEqual(
      handed.map((runs) => runs.map((r) => r.start)),
      [[5]],
    );
    assert.equal(plans.current(HOST)?.slots[0].start, 5);
    plans.stop();
  });

  it('makes one more replan after the one in flight for any number of changes meanwhile', async () => {
    const { plans, calls, handed } = keeper();
    plans.start();
    await clock.tickAsync(0);
    for (let i = 0; i < 3; i++) {
      plans.declaredChanged(HOST);
      await clock.tickAsync(1_000);
    }
    await clock.tickAsync(60_000); // the minute's replan too
    assert.equal(calls.length, 1, 'a second plan was started while the first was in flight');
    calls[0].answer(view(5));
    await clock.tickAsync(0);
    assert.equal(calls.length, 2);
    assert.equal(calls[1].input.previous?.slots[0].start, 5, 'the replan starts from the plan before it');
    calls[1].answer(view(6));
    await clock.tickAsync(0);
    assert.equal(calls.length, 2);
    assert.deepEqual(
      handed.map((runs) => runs[0].start),
      [5, 6],
    );
    plans.stop();
  });

  it('keeps the last plan when a replan fails, and plans again at the next change', async () => {
    const { plans, calls, handed, logged } = keeper();
    plans.start();
    await clock.tickAsync(0);
    calls[0].answer(view(5));
    await clock.tickAsync(0);
    plans.declaredChanged(HOST);
    await clock.tickAsync(1_000);
    calls[1].fail(new Error('the planning thread exited with code 1'));
    await clock.tickAsync(0);
    assert.equal(plans.current(HOST)?.slots[0].start, 5);
    assert.match(logged.join('\n'), /could not plan a host.*the planning thread exited/);
    plans.declaredChanged(HOST);
    await clock.tickAsync(1_000);
    assert.equal(calls.length, 3);
    calls[2].answer(view(7));
    await clock.tickAsync(0);
    assert.deepEqual(
      handed.map((runs) => runs[0].start),
      [5, 7],
    );
    plans.stop();
  });

  it('lets a plan that leaves runs out keep them out on replans, but plans it from scratch every 10 minutes', async () => {
    const { plans, calls } = keeper();
    plans.start();
    await clock.tickAsync(0);
    for (let minute = 1; minute <= 21; minute++) {
      calls[calls.length - 1].answer(view(5, ['vm-1/nightly@x']));
      await clock.tickAsync(60_000);
    }
    // The replan of each minute is given the runs the last plan left out, but at minutes 1, 11 and 21.
    const fresh = calls
      .map((c, i) => (c.input.previous && c.input.previous.noRoom === undefined ? i : -1))
      .filter((i) => i >= 0);
    assert.deepEqual(fresh, [1, 11, 21]);
    assert.deepEqual(calls[2].input.previous?.noRoom, ['vm-1/nightly@x']);
    plans.stop();
  });

  it("places a VM's runs anew once its backup ended, instead of keeping slots its token held back", async () => {
    const { plans, calls, commit } = keeper();
    plans.start();
    await clock.tickAsync(0);
    const other = { ...view(9).slots[0], id: 'vm-2/nightly@9', vm: 'vm-2' };
    const first = view(9);
    calls[0].answer({ ...first, slots: [...first.slots, other] });
    await clock.tickAsync(0);
    commit({ type: 'released', lease: { host: HOST, vm: 'vm-1' } });
    await clock.tickAsync(1_000);
    assert.deepEqual(
      calls[1].input.previous?.slots.map((s) => s.id),
      ['vm-2/nightly@9'],
      "vm-1's slots are placed anew, vm-2's kept",
    );
    calls[1].answer(view(5));
    await clock.tickAsync(60_000);
    assert.deepEqual(
      calls[2].input.previous?.slots.map((s) => s.id),
      ['vm-1/nightly@5'],
      'only the replan right after the release',
    );
    plans.stop();
  });

  it('answers a view on its own planner, without waiting for the replan in flight', async () => {
    const { plans, calls } = keeper(async (input) => view(input.horizonMs));
    plans.start();
    await clock.tickAsync(0);
    assert.equal(calls.length, 1, 'a replan is in flight');
    assert.equal((await plans.view(HOST, 7_200_000)).slots[0].start, 7_200_000);
    assert.equal(calls.length, 1, 'the view went to its own planner');
    plans.stop();
  });

  it('hands nothing on once stopped, even a plan that was in flight', async () => {
    const { plans, calls, handed } = keeper();
    plans.start();
    await clock.tickAsync(0);
    plans.declaredChanged(HOST);
    await clock.tickAsync(1_000);
    plans.stop();
    calls[0].answer(view(5));
    await clock.tickAsync(120_000);
    assert.equal(handed.length, 0);
    assert.equal(calls.length, 1, 'a replan was started after stop');
    assert.equal(plans.current(HOST), undefined);
  });
});

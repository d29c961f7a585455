import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import { type PlanViewInput, buildPlanView } from '../../../../coordinator/planning/plan-view';
import { PlanWorker } from '../../../../coordinator/planning/plan-worker';

const HOUR = 3_600_000;
const NOW = new Date(2026, 0, 15, 12).getTime();

function input(over: Partial<PlanViewInput> = {}): PlanViewInput {
  const jobs = ['0 1 * * *', '30 1 * * *', '0 * * * *'].map((schedule, i) => ({
    name: `job-${i}`,
    schedule,
    windowMs: 3 * HOUR,
    expectedDurationMs: 20 * 60_000,
    declaredCost: { ioBytesPerSec: 50_000_000, cpuPercent: 100 },
    priority: 0,
  }));
  return {
    now: NOW,
    horizonMs: 24 * HOUR,
    policy: { ...DEFAULT_POLICY, maxGuestTokens: 1 },
    declared: ['vm-1', 'vm-2'].map((vm) => ({ vm, kind: 'GUEST' as const, jobs })),
    running: [],
    ended: [],
    ...over,
  };
}

describe('PlanWorker (a real worker thread)', () => {
  let worker: PlanWorker;
  beforeEach(() => (worker = new PlanWorker()));
  afterEach(() => worker.close());

  it('answers with the view buildPlanView gives on this thread', async () => {
    const view = await worker.plan(input());
    assert.ok(view.slots.length > 40, `expected a day of hourly slots, got ${view.slots.length}`);
    assert.deepEqual(view, buildPlanView(input()));
  });

  it('answers calls in the order they were made, each with its own input', async () => {
    const [one, two] = await Promise.all([worker.plan(input({ horizonMs: 2 * HOUR })), worker.plan(input())]);
    assert.equal(one.horizonEnd, NOW + 2 * HOUR);
    assert.equal(two.horizonEnd, NOW + 24 * HOUR);
  });

  it('gives back an InvalidArgumentError that names the field, and goes on planning', async () => {
    const bad = input({ policy: { ...DEFAULT_POLICY, maxGuestTokens: 0 } });
    const error = await worker.plan(bad).then(
      () => assert.fail('a cap of 0 was planned'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof InvalidArgumentError, String(error));
    assert.equal(error.field, 'host.maxGuestTokens');
    assert.ok((await worker.plan(input())).slots.length > 0);
  });

  it('fails the calls a dead thread held, and plans on a new thread at the next call', async () => {
    const held = assert.rejects(worker.plan(input()), /the planning thread exited/);
    // The thread was started by this call and is still loading: it dies before it can answer.
    await (worker as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await held;
    assert.deepEqual(await worker.plan(input()), buildPlanView(input()));
  });

  it('ends its thread once idle for idleMs, and plans on a new one at the next call', async () => {
    const idle = new PlanWorker(50);
    try {
      const thread = () => (idle as unknown as { worker?: object }).worker;
      await idle.plan(input());
      const first = thread();
      assert.ok(first);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(thread(), undefined, 'the idle thread was not ended');
      assert.deepEqual(await idle.plan(input()), buildPlanView(input()));
      assert.notEqual(thread(), first);
    } finally {
      await idle.close();
    }
  });

  it('refuses calls once closed, and fails those still waiting', async () => {
    const waiting = assert.rejects(worker.plan(input()), /closed/);
    await worker.close();
    await waiting;
    await assert.rejects(worker.plan(input()), /closed/);
  });
});

import { strict as assert } from 'node:assert';
import { createLogger } from '../../../../common/util/log';
import type { BackupRunView } from '../../../../coordinator/hypervisor-jobs/backup-runner';
import { HypervisorScheduler, dueSlots, retryAt } from '../../../../coordinator/hypervisor-jobs/hypervisor-scheduler';
import type { HypervisorJob } from '../../../../coordinator/hypervisor-jobs/hypervisor-schedule';
import type { PlanView, ViewSlot } from '../../../../coordinator/planning/plan-view';

const job = (name: string, vms: string[], driver = true): HypervisorJob => ({
  name,
  vms,
  schedule: '0 3 * * *',
  windowMs: 3_600_000,
  expectedDurationMs: 60_000,
  priority: 0,
  declaredCost: null,
  ...(driver && { driver: { driver: 'command' as const, command: ['true'] } }),
});

const slot = (
  id: string,
  vm: string,
  jobName: string,
  start: number,
  windowEnd: number,
  kind: 'GUEST' | 'HYPERVISOR' = 'HYPERVISOR',
): ViewSlot => ({
  id,
  vm,
  job: jobName,
  kind,
  start,
  end: start + 60_000,
  earliestStart: start,
  windowEnd,
});

describe('hypervisor scheduler', () => {
  const jobs = [job('nightly', ['vm1', 'vm2']), job('planned-only', ['vm3'], false)];

  it('starts the HYPERVISOR slots that are due, of jobs with a driver, once', () => {
    const slots = [
      slot('a', 'vm1', 'nightly', 1_000, 10_000),
      slot('b', 'vm2', 'nightly', 5_001, 10_000), // not yet
      slot('c', 'vm3', 'planned-only', 1_000, 10_000), // no driver: someone else runs it
      slot('d', 'vm1', 'nightly', 1_000, 10_000, 'GUEST'),
      slot('e', 'vm2', 'nightly', 1_000, 4_000), // window closed
      slot('f', 'vm2', 'other', 1_000, 10_000), // vm2 is not in job "other"
    ];
    assert.deepEqual(
      dueSlots(slots, jobs, new Set(), 5_000).map((s) => s.id),
      ['a'],
    );
    assert.deepEqual(
      dueSlots(slots, jobs, new Set(['a']), 5_000).map((s) => s.id),
      [],
    );
    assert.deepEqual(
      dueSlots(slots, jobs, new Set(['a']), 5_001).map((s) => s.id),
      ['b'],
    );
  });

  it("hands the runner the slot's job and window end, and does not retry a slot the runner refused", () => {
    let now = 2_000;
    let plan: PlanView = {
      now,
      horizonEnd: 0,
      budget: { cpuPercent: 0, ioBytesPerSec: 0 },
      slots: [slot('a', 'vm1', 'nightly', 1_000, 9_000), slot('b', 'vm2', 'nightly', 1_500, 9_500)],
      unplaced: [],
      noRoom: [],
      phases: [],
    };
    const calls: Array<[string, object]> = [];
    const runner = {
      start(vm: string, options: object): BackupRunView {
        calls.push([vm, options]);
        if (vm === 'vm2') throw new Error('a backup of vm2 is already running');
        return { runId: `run-${vm}` } as BackupRunView;
      },
      list: (): BackupRunView[] => [],
    };
    const scheduler = new HypervisorScheduler({
      plans: { current: (host) => (host === 'host-a' ? plan : undefined) },
      runner,
      jobs,
      host: 'host-a',
      clock: { now: () => now } as never,
      log: createLogger({ level: 'silent' }),
    });
    scheduler.tick();
    assert.deepEqual(calls, [
      ['vm1', { job: 'nightly', windowEndMs: 9_000 }],
      ['vm2', { job: 'nightly', windowEndMs: 9_500 }],
    ]);
    now = 3_000;
    scheduler.tick();
    assert.equal(calls.length, 2, 'each planned run is started once');
    // The next day's occurrence has a new id: it starts when due.
    plan = { ...plan, slots: [slot('a2', 'vm1', 'nightly', 90_000, 99_000)] };
    now = 90_000;
    scheduler.tick();
    assert.deepEqual(calls[2], ['vm1', { job: 'nightly', windowEndMs: 99_000 }]);
  });

  it('runs a failed planned run again after the retry delay, while retries are left and it still fits its window', () => {
    const failed = { state: 'FAILED' as const, endedAtMs: 10_000, cancelRequested: false };
    const slotOf = { start: 0, end: 60_000, windowEnd: 200_000 };
    const driver = { retries: 2, retryDelayMs: 30_000 };
    assert.equal(retryAt(failed, 1, driver, slotOf), 40_000);
    assert.equal(retryAt(failed, 2, driver, slotOf), 40_000, 'the second run failed: one retry left');
    assert.equal(retryAt(failed, 3, driver, slotOf), undefined, 'no retries left');
    assert.equal(retryAt(failed, 1, {}, slotOf), undefined, 'no retries by default');
    assert.equal(
      retryAt(failed, 1, { retries: 1 }, { ...slotOf, windowEnd: 10 * 60_000 + 70_000 }),
      10 * 60_000 + 10_000,
      'ten minutes by default',
    );
    assert.equal(retryAt(failed, 1, driver, { ...slotOf, windowEnd: 99_999 }), undefined, 'would end after its window');
    assert.equal(retryAt({ ...failed, cancelRequested: true }, 1, driver, slotOf), undefined, 'cancelled, not failed');
    assert.equal(retryAt({ ...failed, state: 'SUCCEEDED' }, 1, driver, slotOf), undefined);
  });

  it('retries a planned run that failed, as a new run of the same slot, and stops once one succeeds', () => {
    let now = 1_000;
    const retrying = [
      {
        ...job('nightly', ['vm1']),
        driver: { driver: 'command' as const, command: ['false'], retries: 3, retryDelayMs: 5_000 },
      },
    ];
    const plan: PlanView = {
      now,
      horizonEnd: 0,
      budget: { cpuPercent: 0, ioBytesPerSec: 0 },
      slots: [slot('a', 'vm1', 'nightly', 1_000, 600_000)],
      unplaced: [],
      noRoom: [],
      phases: [],
    };
    const runs: BackupRunView[] = [];
    const runner = {
      start(vm: string, options: { job?: string; windowEndMs?: number }): BackupRunView {
        const run = {
          runId: `run-${runs.length + 1}`,
          vm,
          job: options.job,
          state: 'RUNNING',
          cancelRequested: false,
        } as BackupRunView;
        runs.push(run);
        return run;
      },
      list: (vm?: string) => runs.filter((r) => r.vm === vm),
    };
    const scheduler = new HypervisorScheduler({
      plans: { current: () => plan },
      runner,
      jobs: retrying,
      host: 'host-a',
      clock: { now: () => now } as never,
      log: createLogger({ level: 'silent' }),
    });
    const end = (i: number, state: 'FAILED' | 'SUCCEEDED') => Object.assign(runs[i], { state, endedAtMs: now });
    scheduler.tick();
    assert.equal(runs.length, 1);
    now = 2_000;
    end(0, 'FAILED');
    now = 6_999;
    scheduler.tick();
    assert.equal(runs.length, 1, 'not before the retry delay');
    now = 7_000;
    scheduler.tick();
    assert.equal(runs.length, 2, 'retried');
    assert.equal(runs[1].job, 'nightly');
    now = 8_000;
    end(1, 'SUCCEEDED');
    now = 60_000;
    scheduler.tick();
    assert.equal(runs.length, 2, 'no retry after a success');
  });
});

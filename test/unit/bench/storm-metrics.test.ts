import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { BOUND_STEPS, boundLadderMs } from '../../../bench/storm-metrics';
import type { ScenarioJob } from '../../../bench/storm-scenario';
import { HostTimeline, prepare, searchPlacements } from '../../../coordinator/planner';
import type { PlanHost } from '../../../coordinator/planner/types';
import { propertyRuns } from '../../helpers/property-runs';

const MIN = 60_000;
const MB = 1_000_000;
const T0 = Date.UTC(2026, 0, 15, 22);

function job(id: string, over: Partial<ScenarioJob> = {}): ScenarioJob {
  return {
    id,
    type: 'files',
    kind: 'GUEST',
    vm: id,
    earliestStart: T0,
    windowEnd: T0 + 10 * 60 * MIN,
    durationMs: 60 * MIN,
    cost: { ioBytesPerSec: 10 * MB, cpuPercent: 10 },
    priority: 0,
    ...over,
  };
}

const host: PlanHost = {
  maxGuestTokens: 1,
  maxHypervisorTokens: 1,
  budget: { ioBytesPerSec: 500 * MB, cpuPercent: 800 },
  minStartGapMs: 0,
};
const sharpest = (night: ScenarioJob[], day: ScenarioJob[]) =>
  boundLadderMs(night, host, day).cumulativeMs[BOUND_STEPS.length - 1];

describe('storm bench: the lower bound of the night', () => {
  it('counts a later job whose window lies inside the night, as every plan placing it runs it there', () => {
    const night = [job('night')];
    const hourly = job('hourly', {
      type: 'hourly',
      earliestStart: T0 + 30 * MIN,
      windowEnd: T0 + 45 * MIN,
      durationMs: 10 * MIN,
    });
    assert.equal(sharpest(night, night), 60 * MIN);
    // One token: 60 minutes of the night's job and 10 of the hourly one, whatever their order.
    assert.equal(sharpest(night, [...night, hourly]), 70 * MIN);
  });

  it('leaves out a later job that may run after the night', () => {
    const night = [job('night')];
    const later = job('later', { earliestStart: T0 + 30 * MIN, windowEnd: T0 + 90 * MIN, durationMs: 10 * MIN });
    assert.equal(sharpest(night, [...night, later]), 60 * MIN);
  });

  it('raises the bound until it holds for the jobs due by it: one due job can bring in the next', () => {
    const night = [job('night')];
    const first = job('first', { earliestStart: T0 + 10 * MIN, windowEnd: T0 + 60 * MIN, durationMs: 10 * MIN });
    // Due by 70 minutes: only counts once the first has raised the bound to 70.
    const second = job('second', { earliestStart: T0 + 20 * MIN, windowEnd: T0 + 70 * MIN, durationMs: 10 * MIN });
    assert.equal(sharpest(night, [...night, first, second]), 80 * MIN);
  });

  it('is never beaten: no plan places every job with the night ending before the bound (exhaustive search)', () => {
    const kind = fc.constantFrom('GUEST' as const, 'HYPERVISOR' as const);
    const vm = fc.constantFrom('vm-1', 'vm-2', 'vm-3');
    const cost = fc.record({
      ioBytesPerSec: fc.integer({ min: 10, max: 150 }).map((x) => x * MB),
      cpuPercent: fc.integer({ min: 10, max: 100 }),
    });
    const nightJob = fc.record({
      kind,
      vm,
      cost,
      release: fc.integer({ min: 0, max: 6 }),
      minutes: fc.integer({ min: 5, max: 40 }),
    });
    const laterJob = fc.record({
      kind,
      vm,
      cost,
      release: fc.integer({ min: 1, max: 24 }),
      minutes: fc.integer({ min: 5, max: 20 }),
      slack: fc.integer({ min: 0, max: 30 }),
    });
    const hostArb = fc.record({
      maxGuestTokens: fc.integer({ min: 1, max: 3 }),
      maxHypervisorTokens: fc.integer({ min: 1, max: 2 }),
      budget: fc.record({
        ioBytesPerSec: fc.integer({ min: 150, max: 300 }).map((x) => x * MB),
        cpuPercent: fc.integer({ min: 100, max: 300 }),
      }),
      minStartGapMs: fc.constantFrom(0, MIN),
    });
    fc.assert(
      fc.property(
        hostArb,
        fc.array(nightJob, { minLength: 1, maxLength: 4 }),
        fc.array(laterJob, { maxLength: 3 }),
        (h, nights, laters) => {
          const night = nights.map((j, i) =>
            job(`night-${i}`, {
              kind: j.kind,
              vm: j.vm,
              cost: j.cost,
              earliestStart: T0 + j.release * 5 * MIN,
              durationMs: j.minutes * MIN,
            }),
          );
          const start = Math.min(...night.map((j) => j.earliestStart));
          const later = laters.map((j, i) => {
            const earliestStart = start + j.release * 5 * MIN;
            return job(`later-${i}`, {
              kind: j.kind,
              vm: j.vm,
              cost: j.cost,
              earliestStart,
              durationMs: j.minutes * MIN,
              windowEnd: earliestStart + (j.minutes + j.slack) * MIN,
            });
          });
          const bound = boundLadderMs(night, h, [...night, ...later]).cumulativeMs[BOUND_STEPS.length - 1];
          // Every night job must end a millisecond before the bound: the search must find no such plan.
          const cut = night.map((j) => ({ ...j, windowEnd: start + bound - 1 }));
          const input = { now: T0 - MIN, host: h, jobs: [...cut, ...later] };
          const prepared = input.jobs.map((j, rank) => ({ ...prepare(j, input), rank }));
          if (prepared.some((p) => p.unplaceable)) return; // a night job cannot even fit before the bound alone
          const result = searchPlacements(new HostTimeline(h), prepared, 2_000_000);
          assert.ok(
            result.found === undefined,
            `a plan ends the night at ${Math.max(...[...(result.found ?? [])].filter(([p]) => p.job.id.startsWith('night')).map(([p, s]) => s + p.job.durationMs)) - start} ms, under the bound ${bound}`,
          );
          assert.ok(result.exhausted, 'the search ran out of nodes');
        },
      ),
      { numRuns: propertyRuns(300) },
    );
  });
});

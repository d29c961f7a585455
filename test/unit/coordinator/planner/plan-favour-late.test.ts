import { strict as assert } from 'node:assert';
import { FAVOUR_LATE_WORK_JOBS, favourLateJobs } from '../../../../coordinator/planner/plan-favour-late';
import { compareJobs, prepare } from '../../../../coordinator/planner/plan-prepared';
import { better } from '../../../../coordinator/planner/plan-score';
import type { Plan, PlanInput, Prepared } from '../../../../coordinator/planner/types';
import { T0, planJob } from '../domain/fixtures';

const MIN = 60_000;
const HOUR = 60 * MIN;

// The favour-late step on its own, against a scripted phasing: what each set of favoured jobs gives, by key.
const input: PlanInput = {
  now: T0,
  host: { maxGuestTokens: 2, maxHypervisorTokens: 1, budget: { ioBytesPerSec: 0, cpuPercent: 0 }, minStartGapMs: 0 },
  jobs: ['x', 'y', 'z', 'w'].map((id) => planJob(id, { windowEnd: T0 + 8 * HOUR, durationMs: HOUR })),
};
const order: Prepared[] = input.jobs.map((j) => prepare(j, input)).sort(compareJobs);
order.forEach((p, i) => (p.rank = i));

/** A plan with these jobs at these starts (hours after T0), an hour each, and these left out for room. */
function plan(starts: Record<string, number>, leftOut: string[] = []): Plan {
  const slots = Object.entries(starts).map(([id, h]) => ({
    id,
    kind: 'GUEST' as const,
    vm: id,
    start: T0 + h * HOUR,
    end: T0 + (h + 1) * HOUR,
  }));
  return { slots, unplaced: leftOut.map((id) => ({ id, reason: 'no-room' as const })), phases: [] };
}

const key = (favoured: ReadonlySet<string>) => [...favoured].sort().join(',');

function scripted(plans: Record<string, Plan>) {
  const calls: string[] = [];
  const repairs: string[] = [];
  return {
    calls,
    repairs,
    phasing: (favoured: ReadonlySet<string>) => {
      calls.push(key(favoured));
      const p = plans[key(favoured)];
      assert.ok(p, `no plan scripted for {${key(favoured)}}`);
      return p;
    },
    repair: (p: Plan, favoured: ReadonlySet<string>) => {
      repairs.push(key(favoured));
      return plans[`repaired ${key(favoured)}`] ?? p;
    },
  };
}

describe('favourLateJobs: favouring the jobs that end the plan late, one at a time', () => {
  // x and y run first; z and w start hours after their ready time, w ending last.
  const base = plan({ x: 0, y: 0, z: 2, w: 3 });

  it('favours the latest-ending late job first and keeps the plan when it clears the work sooner', () => {
    const s = scripted({ w: plan({ x: 0, y: 0, w: 1, z: 2 }), 'w,z': plan({ x: 0, y: 0, w: 1, z: 1 }) });
    const result = favourLateJobs(order, { plan: base, favoured: new Set() }, s.phasing, s.repair);
    assert.deepEqual(s.calls, ['w', 'w,z'], 'w first (ends at 4 h), then z, on top of w');
    assert.equal(result, s.phasing(new Set(['w', 'z'])));
    assert.deepEqual(s.repairs, [], 'no try left more out, so none was repaired');
  });

  it('drops a try that is no better and tries the next candidate from the same plan', () => {
    const s = scripted({
      w: plan({ x: 0, y: 0, z: 2, w: 3 }),
      z: plan({ x: 0, y: 0, z: 1, w: 2 }),
      'w,z': plan({ x: 0, y: 0, z: 1, w: 1 }),
    });
    const result = favourLateJobs(order, { plan: base, favoured: new Set() }, s.phasing, s.repair);
    assert.deepEqual(s.calls.slice(0, 2), ['w', 'z'], 'w changed nothing; z did');
    assert.equal(result, s.phasing(new Set(['z'])), 'w, tried once already, is not tried again');
  });

  it('repairs a try that leaves a job out, and if it still does, favours that job too', () => {
    const s = scripted({
      w: plan({ y: 0, w: 0, z: 1 }, ['x']),
      'w,x': plan({ x: 0, w: 0, y: 1, z: 1 }),
    });
    const result = favourLateJobs(order, { plan: base, favoured: new Set() }, s.phasing, s.repair);
    assert.equal(s.repairs[0], 'w', 'the try that left x out was repaired, with its own favoured jobs');
    assert.deepEqual(s.calls.slice(0, 2), ['w', 'w,x']);
    assert.equal(result, s.phasing(new Set(['w', 'x'])));
    assert.equal(result.unplaced.length, 0);
  });

  it('takes a repaired try when the repair places the job it had left out', () => {
    const repairedPlan = plan({ x: 1, y: 0, w: 0, z: 1 });
    const s = scripted({ w: plan({ y: 0, w: 0, z: 1 }, ['x']), 'repaired w': repairedPlan });
    const result = favourLateJobs(order, { plan: base, favoured: new Set() }, s.phasing, s.repair);
    assert.equal(result, repairedPlan);
    assert.ok(!s.calls.includes('w,x'), 'no second try was needed');
  });

  it('never returns a plan that leaves more jobs out than the one it started from', () => {
    const s = scripted({
      w: plan({ x: 0, y: 0, w: 0 }, ['z']),
      'w,z': plan({ x: 0, y: 0, w: 0 }, ['z']),
      z: plan({ x: 0, y: 0, z: 0 }, ['w']),
    });
    const result = favourLateJobs(order, { plan: base, favoured: new Set() }, s.phasing, s.repair);
    assert.equal(result, base, 'each try ends sooner, but leaves a job out');
  });

  it('goes on from the favoured jobs it starts with', () => {
    const s = scripted({ 'v,w': plan({ x: 0, y: 0, w: 1, z: 2 }), 'v,w,z': plan({ x: 0, y: 0, w: 1, z: 2 }) });
    favourLateJobs(order, { plan: base, favoured: new Set(['v']) }, s.phasing, s.repair);
    assert.deepEqual(s.calls, ['v,w', 'v,w,z']);
  });

  it('does not try again a job it already favours, late as it may still be', () => {
    const s = scripted({ 'w,z': plan({ x: 0, y: 0, w: 3, z: 1 }) });
    favourLateJobs(order, { plan: base, favoured: new Set(['w']) }, s.phasing, s.repair);
    assert.deepEqual(s.calls, ['w,z']);
  });

  it('makes no try on a host too large for its budget', () => {
    const many: PlanInput = {
      ...input,
      jobs: Array.from({ length: FAVOUR_LATE_WORK_JOBS + 1 }, (_, i) => planJob(`j${i}`, { windowEnd: T0 + 8 * HOUR })),
    };
    const big = many.jobs.map((j) => prepare(j, many));
    const s = scripted({});
    assert.equal(favourLateJobs(big, { plan: base, favoured: new Set() }, s.phasing, s.repair), base);
    assert.deepEqual(s.calls, []);
  });
});

describe('better: the order the favour-late step keeps plans by', () => {
  it('prefers fewer jobs left out for room over a sooner end', () => {
    assert.ok(better(plan({ x: 0, y: 5 }), plan({ x: 0 }, ['y']), order));
    assert.ok(!better(plan({ x: 0 }, ['y']), plan({ x: 0, y: 5 }), order));
  });

  it('with as many left out, prefers the plan that clears the work that was ready sooner', () => {
    assert.ok(better(plan({ x: 0, y: 1 }), plan({ x: 0, y: 2 }), order));
    assert.ok(!better(plan({ x: 0, y: 1 }), plan({ x: 0, y: 1 }), order), 'a tie is not better');
  });
});

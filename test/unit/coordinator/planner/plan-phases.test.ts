import { strict as assert } from 'node:assert';
import { phasedStarts } from '../../../../coordinator/planner/plan-phases';
import { compareJobs, prepare } from '../../../../coordinator/planner/plan-prepared';
import { planHost } from '../../../../coordinator/planner/planner';
import type { PlanInput, PlanJob } from '../../../../coordinator/planner/types';
import { T0, planJob } from '../domain/fixtures';

const MIN = 60_000;

/** By default a 90-minute job due within 8 hours. */
const job = (id: string, partial: Partial<PlanJob> = {}) =>
  planJob(id, { windowEnd: T0 + 8 * 60 * MIN, durationMs: 90 * MIN, ...partial });

/** The phases step's proposed starts with these jobs favoured, in minutes after T0, by id. */
function proposed(input: PlanInput, favoured: string[]): Record<string, number> {
  const order = input.jobs.map((j) => prepare(j, input)).sort(compareJobs);
  order.forEach((p, i) => (p.rank = i));
  return Object.fromEntries(
    [...phasedStarts(order, input, new Map(), new Set(favoured))].map(([p, start]) => [p.job.id, (start - T0) / MIN]),
  );
}

describe('phasedStarts: the openings of a favoured job beside its VM’s hourly jobs', () => {
  // VM a: hourly jobs of 5 minutes at :05, and a 100-minute file backup that must start by 01:55. It fits
  // only right after an hourly job started at its ready time (5 + 5 + 100 = 110 ≤ 120, the next one's
  // latest start): two openings, at 00:10 and 01:10. Two other VMs' 90-minute backups, longest first,
  // would take both tokens at 0 until 01:30, and both openings would be gone.
  const input: PlanInput = {
    now: T0,
    host: { maxGuestTokens: 2, maxHypervisorTokens: 1, budget: { ioBytesPerSec: 0, cpuPercent: 0 }, minStartGapMs: 0 },
    jobs: [
      ...[0, 1, 2, 3].map((h) =>
        job(`a/h${h}`, {
          vm: 'a',
          earliestStart: T0 + (5 + 60 * h) * MIN,
          windowEnd: T0 + (65 + 60 * h) * MIN,
          durationMs: 5 * MIN,
        }),
      ),
      job('a/files', { vm: 'a', windowEnd: T0 + 215 * MIN, durationMs: 100 * MIN }),
      job('b1'),
      job('b2'),
    ],
  };

  it('favoured, keeps a token free for the hourly job due soon, starts it at its ready time and the long job on the token it frees', () => {
    const starts = proposed(input, ['a/files']);
    assert.equal(starts.b1, 0);
    assert.equal(starts['a/h0'], 5, 'the hourly job, on the token kept for it');
    assert.equal(starts['a/files'], 10, 'right after it');
    assert.equal(starts.b2, 90, 'b2 could wait, so it did');
  });

  it('not favoured, longest first, both tokens are taken at 0 and the long job misses both openings', () => {
    const starts = proposed(input, []);
    assert.deepEqual([starts.b1, starts.b2], [0, 0]);
    assert.equal(starts['a/h0'], undefined, 'no token from 00:05 to its latest start');
    assert.equal(starts['a/files'], undefined);
  });

  it('leaves the planner a plan placing every job, in their windows', () => {
    const plan = planHost(input);
    assert.deepEqual(plan.unplaced, []);
    const byId = new Map(input.jobs.map((j) => [j.id, j]));
    for (const s of plan.slots)
      assert.ok(s.start >= byId.get(s.id)!.earliestStart && s.end <= byId.get(s.id)!.windowEnd, s.id);
  });
});

describe('phasedStarts: a favoured job without hourly jobs beside it', () => {
  const input: PlanInput = {
    now: T0,
    host: { maxGuestTokens: 1, maxHypervisorTokens: 1, budget: { ioBytesPerSec: 0, cpuPercent: 0 }, minStartGapMs: 0 },
    jobs: [job('long'), job('short', { durationMs: 30 * MIN })],
  };

  it('starts as soon as it can, ahead of the longest-first order', () => {
    assert.deepEqual(proposed(input, []), { long: 0, short: 90 });
    assert.deepEqual(proposed(input, ['short']), { short: 0, long: 30 });
  });
});

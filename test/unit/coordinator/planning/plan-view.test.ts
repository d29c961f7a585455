import { strict as assert } from 'node:assert';
import { parseCron } from '../../../../common/util/cron';
import type { Lease } from '../../../../coordinator/domain/lease';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import {
  type DeclaredJob,
  type PlanViewInput,
  buildPlanView,
  runDurations,
} from '../../../../coordinator/planning/plan-view';
import type { EndedRun } from '../../../../coordinator/store/store';

// Cron times are local: the fixtures are too.
const at = (h: number, m = 0, day = 15) => new Date(2026, 0, day, h, m, 0).getTime();
const NOW = at(12);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function job(over: Partial<DeclaredJob> = {}): DeclaredJob {
  return {
    name: 'nightly',
    schedule: '0 2 * * *',
    windowMs: 4 * HOUR,
    expectedDurationMs: HOUR,
    declaredCost: null,
    priority: 0,
    ...over,
  };
}

function input(over: Partial<PlanViewInput> = {}): PlanViewInput {
  return {
    now: NOW,
    horizonMs: DAY,
    policy: { ...DEFAULT_POLICY },
    declared: [{ vm: 'vm-1', kind: 'GUEST', jobs: [job()] }],
    running: [],
    ended: [],
    ...over,
  };
}

/** A run of vm-1's nightly that ended at `endedAt`, released with `success` after `durationMs`. */
function run(endedAt: number, durationMs: number, success = true, state: EndedRun['state'] = 'released'): EndedRun {
  const outcome = { success, bytes: 1024, durationMs, exitCode: success ? 0 : 1, message: '' };
  return {
    kind: 'GUEST',
    vm: 'vm-1',
    job: 'nightly',
    grantedAt: endedAt - durationMs,
    endedAt,
    state,
    ...(state === 'released' && { outcome }),
  };
}

function lease(over: Partial<Lease> = {}): Lease {
  return {
    tokenId: 't1',
    requestId: 'r1',
    fencing: 1,
    kind: 'GUEST',
    host: 'host-a',
    vm: 'vm-1',
    job: 'other',
    priority: 0,
    ttlMs: 30_000,
    grantedAt: NOW - HOUR,
    expiresAt: NOW + 30_000,
    slot: { start: NOW - HOUR, expectedEnd: NOW + 2 * HOUR, windowEnd: 0 },
    budget: { ioBytesPerSec: 0, cpuPercent: 0 },
    ...over,
  };
}

describe('buildPlanView', () => {
  it('plans each occurrence of a declared cron job in the horizon, in a window of its window_ms, for its declared duration', () => {
    const view = buildPlanView(input());
    assert.deepEqual(view.slots, [
      {
        id: `vm-1/nightly@${at(2, 0, 16)}`,
        vm: 'vm-1',
        job: 'nightly',
        kind: 'GUEST',
        start: at(2, 0, 16),
        end: at(3, 0, 16),
        earliestStart: at(2, 0, 16),
        windowEnd: at(6, 0, 16),
      },
    ]);
    assert.deepEqual(view.unplaced, []);
    assert.equal(view.horizonEnd, NOW + DAY);
  });

  it('plans an hourly job once per hour of the horizon, starts spread when jobs are due together', () => {
    const view = buildPlanView(
      input({
        declared: [
          {
            vm: 'vm-1',
            kind: 'GUEST',
            jobs: [job({ schedule: '0 * * * *', windowMs: HOUR, expectedDurationMs: 60_000 })],
          },
          {
            vm: 'vm-2',
            kind: 'GUEST',
            jobs: [job({ schedule: '0 * * * *', windowMs: HOUR, expectedDurationMs: 60_000 })],
          },
        ],
      }),
    );
    assert.equal(view.slots.length, 48);
    const starts = view.slots.map((s) => s.start).sort((a, b) => a - b);
    for (let i = 1; i < starts.length; i++)
      assert.ok(starts[i] - starts[i - 1] >= 60_000, 'two starts less than a minute apart');
  });

  it('expands H fields as the agent does, seeded with the job name', () => {
    const view = buildPlanView(
      input({ declared: [{ vm: 'vm-1', kind: 'GUEST', jobs: [job({ schedule: 'H H * * *' })] }] }),
    );
    assert.equal(view.slots[0].earliestStart, parseCron('H H * * *', 'nightly').next(NOW));
  });

  it('learns the duration from the successful runs, not from failed, expired or revoked ones', () => {
    const ended = [1, 2, 3, 4, 5].map((i) => run(at(3, 0, i), 2 * HOUR));
    ended.push(
      run(at(3, 0, 10), 10 * HOUR, false),
      run(at(3, 0, 11), 10 * HOUR, true, 'expired'),
      run(at(3, 0, 12), 10 * HOUR, true, 'revoked'),
    );
    const [s] = buildPlanView(input({ ended })).slots;
    assert.equal(s.end - s.start, 2 * HOUR);
    assert.deepEqual(
      runDurations(ended).get('vm-1/nightly'),
      [2, 2, 2, 2, 2].map((h) => h * HOUR),
    );
  });

  it('still plans the latest occurrence while its window is open and no token was granted for it', () => {
    const declared = [
      { vm: 'vm-1', kind: 'GUEST' as const, jobs: [job({ schedule: '0 11 * * *', windowMs: 3 * HOUR })] },
    ];
    assert.equal(buildPlanView(input({ declared })).slots[0].earliestStart, at(11));
    const ranAt1105 = [run(at(11, 35), 30 * 60_000)];
    const after = buildPlanView(input({ declared, ended: ranAt1105 })).slots;
    assert.deepEqual(
      after.map((s) => s.earliestStart),
      [at(11, 0, 16)],
      "it ran: only tomorrow's is left",
    );
  });

  it('plans no occurrence due before its agent declared the job, so the next one keeps its cron time', () => {
    // issue 15: an agent said hello 38 s past a minute; that minute's run, which the agent would never ask for,
    // was planned at the hello, and the minute's start gap put every later run at :38 too.
    const minute = 60_000;
    const declared = (declaredAt?: number) => [
      {
        vm: 'vm-1',
        kind: 'GUEST' as const,
        jobs: [job({ schedule: '* * * * *', windowMs: 50_000, expectedDurationMs: 1_000 })],
        declaredAt,
      },
    ];
    const now = NOW + 38_000;
    const starts = (declaredAt?: number) =>
      buildPlanView(input({ now, horizonMs: 3 * minute, declared: declared(declaredAt) })).slots.map((s) => s.start);
    assert.deepEqual(starts(now - 1_000), [NOW + minute, NOW + 2 * minute, NOW + 3 * minute]);
    assert.deepEqual(
      starts(NOW - minute),
      [now, now + minute, now + 2 * minute, now + 3 * minute],
      'declared before that minute: it may still ask for it, and the gap spaces the rest after it',
    );
  });

  it("keeps a VM's planned backup clear of the backup it runs now", () => {
    const declared = [
      { vm: 'vm-1', kind: 'GUEST' as const, jobs: [job({ schedule: '0 12 * * *', windowMs: 6 * HOUR })] },
    ];
    const [s] = buildPlanView(input({ declared, running: [lease()] })).slots;
    assert.equal(s.start, NOW + 2 * HOUR);
  });

  it('reports a run that cannot fit its window, and a schedule that cannot be read, with the reason', () => {
    const declared = [
      {
        vm: 'vm-1',
        kind: 'GUEST' as const,
        jobs: [job({ windowMs: HOUR / 2 }), job({ name: 'broken', schedule: '61 * * * *' })],
      },
    ];
    const view = buildPlanView(input({ declared }));
    assert.deepEqual(view.slots, []);
    const byJob = new Map(view.unplaced.map((u) => [u.job, u]));
    assert.equal(byJob.get('nightly')!.reason, 'its window is shorter than its expected duration');
    assert.equal(byJob.get('nightly')!.earliestStart, at(2, 0, 16));
    assert.match(byJob.get('broken')!.reason, /^its schedule "61 \* \* \* \*" cannot be read: /);
  });
});

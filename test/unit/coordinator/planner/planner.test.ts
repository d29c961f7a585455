import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { planHost } from '../../../../coordinator/planner/planner';
import type { Plan, PlanHost, PlanInput, PlanJob } from '../../../../coordinator/planner/types';
import { T0, planJob } from '../domain/fixtures';

const MIN = 60_000;
const HOUR = 60 * MIN;

const HOST: PlanHost = {
  maxGuestTokens: 4,
  maxHypervisorTokens: 1,
  budget: { ioBytesPerSec: 0, cpuPercent: 0 },
  minStartGapMs: 0,
};

const job = planJob;

function plan(jobs: PlanJob[], extra: Omit<Partial<PlanInput>, 'host'> & { host?: Partial<PlanHost> } = {}): Plan {
  return planHost({ now: T0, jobs, ...extra, host: { ...HOST, ...extra.host } });
}

/** Start of each job, in minutes after T0, by id. */
function startsMin(p: Plan): Record<string, number> {
  return Object.fromEntries(p.slots.map((s) => [s.id, (s.start - T0) / MIN]));
}

describe('planHost', () => {
  it('places a lone job at its earliest start, for its expected duration', () => {
    const p = plan([job('a', { earliestStart: T0 + HOUR })]);
    assert.deepEqual(p.slots, [{ id: 'a', kind: 'GUEST', vm: 'a', start: T0 + HOUR, end: T0 + HOUR + 30 * MIN }]);
    assert.deepEqual(p.unplaced, []);
    assert.deepEqual(p.phases, [{ kind: 'GUEST', start: T0 + HOUR, end: T0 + HOUR + 30 * MIN }]);
  });

  it('never starts before now, and puts a job whose cron time has passed at now', () => {
    const p = plan([job('a')], { now: T0 + 10 * MIN });
    assert.deepEqual(startsMin(p), { a: 10 });
  });

  it('puts a hypervisor backup after the guest backups, never beside them, in two phases', () => {
    const p = plan([
      job('g1'),
      job('g2', { durationMs: 20 * MIN }),
      job('h', { kind: 'HYPERVISOR', vm: 'g1', windowEnd: T0 + 5 * HOUR }),
    ]);
    assert.deepEqual(startsMin(p), { g1: 0, g2: 0, h: 30 });
    assert.deepEqual(
      p.phases.map((ph) => [ph.kind, (ph.start - T0) / MIN, (ph.end - T0) / MIN]),
      [
        ['GUEST', 0, 30],
        ['HYPERVISOR', 30, 60],
      ],
    );
  });

  it('runs one backup of a VM at a time', () => {
    const p = plan([job('nightly', { vm: 'vm1' }), job('db', { vm: 'vm1', windowEnd: T0 + 5 * HOUR })]);
    assert.deepEqual(startsMin(p), { nightly: 0, db: 30 });
  });

  it('holds each kind to its cap', () => {
    const p = plan([job('a'), job('b'), job('c')], { host: { maxGuestTokens: 2 } });
    assert.deepEqual(startsMin(p), { a: 0, b: 0, c: 30 });
  });

  it('keeps the declared costs of concurrent backups within the host budget', () => {
    const cost = { ioBytesPerSec: 60, cpuPercent: 10 };
    const p = plan(
      [job('a', { cost }), job('b', { cost }), job('c', { cost: { ioBytesPerSec: 40, cpuPercent: 10 } })],
      {
        host: { budget: { ioBytesPerSec: 100, cpuPercent: 0 } },
      },
    );
    // a and c fit together (100); b waits for a.
    assert.deepEqual(startsMin(p), { a: 0, c: 0, b: 30 });
  });

  it('counts an undeclared cost as the budget divided by the kind’s cap', () => {
    // Budget 100 and cap 4: an undeclared job counts 25, so a 60 and two undeclared fit, a third waits.
    const p = plan([job('big', { cost: { ioBytesPerSec: 60, cpuPercent: 0 } }), job('u1'), job('u2'), job('u3')], {
      host: { budget: { ioBytesPerSec: 100, cpuPercent: 0 } },
    });
    assert.deepEqual(startsMin(p), { big: 0, u1: 0, u2: 30, u3: 30 });
  });

  it('spreads starts by the gap instead of starting everything at the window’s opening', () => {
    const p = plan([job('a'), job('b'), job('c')], { host: { minStartGapMs: 2 * MIN } });
    assert.deepEqual(startsMin(p), { a: 0, b: 2, c: 4 });
  });

  it('serves the earliest deadline first, then the higher priority', () => {
    const p = plan(
      [
        job('late', { vm: 'x', windowEnd: T0 + 3 * HOUR }),
        job('soon', { vm: 'y', windowEnd: T0 + 2 * HOUR }),
        job('soon-important', { vm: 'z', windowEnd: T0 + 2 * HOUR, priority: 5 }),
      ],
      { host: { maxGuestTokens: 1 } },
    );
    assert.deepEqual(startsMin(p), { 'soon-important': 0, soon: 30, late: 60 });
  });

  it('says why a job cannot be placed', () => {
    const p = plan(
      [
        job('short-window', { windowEnd: T0 + 10 * MIN }),
        job('too-late', { earliestStart: T0 - 2 * HOUR, windowEnd: T0 + 10 * MIN }),
        job('too-costly', { cost: { ioBytesPerSec: 500, cpuPercent: 0 } }),
        job('host-busy', { kind: 'HYPERVISOR', windowEnd: T0 + 40 * MIN }),
        job('guest', { windowEnd: T0 + 30 * MIN }),
      ],
      { host: { budget: { ioBytesPerSec: 100, cpuPercent: 0 } } },
    );
    assert.deepEqual(startsMin(p), { guest: 0 });
    assert.deepEqual(p.unplaced, [
      { id: 'short-window', reason: 'window-too-short' },
      { id: 'too-late', reason: 'window-passed' },
      { id: 'host-busy', reason: 'no-room', blockedBy: 'other-kind' },
      { id: 'too-costly', reason: 'cost-exceeds-budget' },
    ]);
  });

  it('plans around the backups running now, until their expected end, going on with their phase', () => {
    const running = [
      { kind: 'HYPERVISOR' as const, vm: 'vm9', expectedEnd: T0 + 15 * MIN, cost: { ioBytesPerSec: 0, cpuPercent: 0 } },
    ];
    assert.deepEqual(startsMin(plan([job('a'), job('h', { kind: 'HYPERVISOR', vm: 'vm8' })], { running })), {
      h: 15,
      a: 45,
    });
    assert.deepEqual(startsMin(plan([job('a'), job('h', { kind: 'HYPERVISOR', vm: 'vm9' })], { running })), {
      h: 15,
      a: 45,
    });
    // One past its expected end holds nothing.
    const late = [{ ...running[0], expectedEnd: T0 }];
    assert.deepEqual(startsMin(plan([job('a')], { running: late })), { a: 0 });
  });

  it('groups guest jobs released during a run of hypervisor backups into one guest phase', () => {
    // Four hypervisor backups one at a time from 22:00; guest jobs at 22:15 and 22:30 with an hour each.
    const at = (min: number) => T0 + min * MIN;
    const jobs = [
      ...[1, 2, 3, 4].map((n) =>
        job(`h${n}`, { kind: 'HYPERVISOR', earliestStart: at(0), windowEnd: at(8 * 60), durationMs: 20 * MIN }),
      ),
      job('g15', { earliestStart: at(15), windowEnd: at(75), durationMs: 5 * MIN }),
      job('g30', { earliestStart: at(30), windowEnd: at(90), durationMs: 5 * MIN }),
    ];
    const p = plan(jobs);
    assert.deepEqual(
      p.phases.map((ph) => ph.kind),
      ['HYPERVISOR', 'GUEST', 'HYPERVISOR'],
    );
    assert.deepEqual(startsMin(p), { h1: 0, h2: 20, h3: 40, g15: 60, g30: 60, h4: 65 });
  });

  it('keeps the previous slots that still fit when a job is removed, added or lengthened', () => {
    const host = { maxGuestTokens: 2, minStartGapMs: MIN };
    const jobs = ['a', 'b', 'c', 'd', 'e'].map((id, i) => job(id, { earliestStart: T0 + i * 10 * MIN }));
    const first = plan(jobs, { host });
    assert.deepEqual(startsMin(first), { a: 0, b: 10, c: 30, d: 40, e: 60 });
    const replan = (changed: PlanJob[]) => startsMin(plan(changed, { host, previous: first }));

    assert.deepEqual(replan(jobs), startsMin(first));
    assert.deepEqual(replan(jobs.filter((j) => j.id !== 'c')), { a: 0, b: 10, d: 40, e: 60 });
    // From scratch f would go at 5 and push b, c, d and e later.
    assert.deepEqual(replan([...jobs, job('f', { earliestStart: T0 + 5 * MIN })]), { ...startsMin(first), f: 70 });
    // b now runs to 55: d, which no longer fits beside b and c, is the only slot to move.
    assert.deepEqual(replan(jobs.map((j) => (j.id === 'b' ? { ...j, durationMs: 45 * MIN } : j))), {
      a: 0,
      b: 10,
      c: 30,
      d: 55,
      e: 60,
    });
  });

  it('gives the previous slots up when keeping them would leave a job out that a new plan places', () => {
    // With the old slots, a (long) holds the only token when the new urgent job must run.
    const first = plan([job('a', { durationMs: 60 * MIN })], { host: { maxGuestTokens: 1 } });
    const urgent = job('urgent', { earliestStart: T0, windowEnd: T0 + 20 * MIN, durationMs: 20 * MIN });
    const p = plan([job('a', { durationMs: 60 * MIN }), urgent], { host: { maxGuestTokens: 1 }, previous: first });
    assert.deepEqual(startsMin(p), { urgent: 0, a: 20 });
  });

  it('keeps the previous slots while they leave out only jobs the previous plan left out too', () => {
    // Later jobs, so that the plan is too big for the exhaustive search (which would place everything).
    const later = Array.from({ length: 8 }, (_, i) =>
      job(`later-${i}`, { earliestStart: T0 + (10 + i) * HOUR, windowEnd: T0 + 20 * HOUR, durationMs: 10 * MIN }),
    );
    const host = { maxGuestTokens: 1 };
    const first = plan([job('a', { durationMs: 60 * MIN }), ...later], { host });
    const urgent = job('urgent', { earliestStart: T0, windowEnd: T0 + 20 * MIN, durationMs: 20 * MIN });
    const jobs = [job('a', { durationMs: 60 * MIN }), urgent, ...later];
    // The last plan left the urgent job out too: keeping its slots makes nothing worse, so no plan from scratch.
    const kept = plan(jobs, { host, previous: { slots: first.slots, noRoom: ['urgent'] } });
    assert.equal(startsMin(kept).a, 0);
    assert.deepEqual(
      kept.unplaced.map((u) => [u.id, u.reason]),
      [['urgent', 'no-room']],
    );
    // New, or left out before in favour of another job: a plan from scratch, which places it.
    for (const noRoom of [[], ['later-0']]) {
      const fresh = plan(jobs, { host, previous: { slots: first.slots, noRoom } });
      assert.deepEqual([startsMin(fresh).urgent, startsMin(fresh).a], [0, 20], `left out before: ${noRoom}`);
    }
  });

  it('repairs a plan that left a long job out: pinned between its VM’s hourly jobs, the rest planned around it', () => {
    // A 104-minute backup of VM a fits only between two of a's hourly jobs, the first at the start of its
    // hour and the next at the end of its own; the phases place the hourly jobs first and leave it out
    // (checked with the repair step disabled), and 10 jobs are too many for the exhaustive search.
    const at = (startMin: number, endMin: number, durationMin: number, partial: Partial<PlanJob> = {}) => ({
      earliestStart: T0 + startMin * MIN,
      windowEnd: T0 + endMin * MIN,
      durationMs: durationMin * MIN,
      ...partial,
    });
    const jobs = [
      ...[0, 1, 2, 3].map((h) => job(`a/h${h}`, { vm: 'a', ...at(60 * h, 60 * (h + 1), 5) })),
      job('a/files', { vm: 'a', ...at(0, 244, 104) }),
      job('f0', at(117, 283, 42)),
      job('f1', at(2, 115, 57)),
      job('f2', at(60, 178, 40, { kind: 'HYPERVISOR' })),
      job('f3', at(1, 103, 39)),
      job('f4', at(26, 101, 39)),
    ];
    const host = { maxGuestTokens: 2, maxHypervisorTokens: 1 };
    const p = plan(jobs, { host });
    assert.deepEqual(p.unplaced, []);
    const s = startsMin(p);
    assert.deepEqual([s['a/h2'], s['a/files'], s['a/h3']], [120, 125, 229]);
    // Replanned with it, the repaired plan stays as it is.
    assert.deepEqual(plan(jobs, { host, previous: p }), p);
  });

  it('gives the same plan whatever the order of the jobs', () => {
    const jobs = [
      job('a', { vm: 'v1', durationMs: 40 * MIN }),
      job('b', { vm: 'v1', windowEnd: T0 + 2 * HOUR }),
      job('c', { kind: 'HYPERVISOR', vm: 'v2' }),
      job('d', { vm: 'v3', priority: 2 }),
    ];
    const host = { maxGuestTokens: 2, minStartGapMs: 30_000 };
    assert.deepEqual(plan([...jobs].reverse(), { host }), plan(jobs, { host }));
  });

  it('refuses malformed input, naming the field', () => {
    const refuses = (input: Partial<PlanInput>, field: string) =>
      assert.throws(
        () => planHost({ now: T0, host: HOST, jobs: [], ...input }),
        (e: unknown) => e instanceof InvalidArgumentError && e.field === field,
      );
    refuses({ jobs: [job('a'), job('a')] }, 'jobs[1].id');
    refuses({ jobs: [job('a', { durationMs: 0 })] }, 'jobs[0].durationMs');
    refuses({ jobs: [job('a', { earliestStart: NaN })] }, 'jobs[0].earliestStart');
    refuses({ jobs: [job('a', { cost: { ioBytesPerSec: -1, cpuPercent: 0 } })] }, 'jobs[0].cost.ioBytesPerSec');
    refuses({ jobs: [job('a', { kind: 'HOST' as never })] }, 'jobs[0].kind');
    refuses({ host: { ...HOST, maxGuestTokens: 0 } }, 'host.maxGuestTokens');
    refuses({ host: { ...HOST, minStartGapMs: -1 } }, 'host.minStartGapMs');
    refuses({ now: Infinity }, 'now');
  });
});

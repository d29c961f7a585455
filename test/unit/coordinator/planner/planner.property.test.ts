/**
 * Property tests of the planner on random hosts and jobs (kinds, VMs, windows, durations, declared and
 * undeclared costs, caps, budgets, gaps between starts, backups already running). Checked against the
 * rules by brute force, independently of the planner's own bookkeeping:
 *  1. every job is either placed, inside its window and not before now, or left out with a reason, and
 *     the reasons that depend on the job alone are exact;
 *  2. at no instant do GUEST and HYPERVISOR backups run together, two backups of a VM run together, a
 *     kind exceed its cap or the costs exceed the budget; planned starts are the gap apart;
 *  3. no job left out for want of room could be added to the final plan as it is;
 *  4. jobs that fit when run one at a time in deadline order are all placed;
 *  5. the plan does not depend on the input's order, and replanning with the previous plan keeps it;
 *  6. on small hosts, whenever a brute-force search over every whole-minute start finds a plan placing
 *     every job that can run alone, the planner places every one of them too.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { Budget, TokenKind } from '../../../../coordinator/domain/lease';
import { planHost } from '../../../../coordinator/planner/planner';
import type { Plan, PlanHost, PlanInput, PlanJob, RunningBackup } from '../../../../coordinator/planner/types';
import { T0 } from '../domain/fixtures';
import { propertyRuns } from '../../../helpers/property-runs';

const MIN = 60_000;
const FULL_RUNS = 400;
const RUNS = propertyRuns(FULL_RUNS);

const kindArb = fc.constantFrom<TokenKind>('GUEST', 'HYPERVISOR');
const costArb = fc.record({
  ioBytesPerSec: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 150 })),
  cpuPercent: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 400 })),
});

const hostArb: fc.Arbitrary<PlanHost> = fc.record({
  maxGuestTokens: fc.integer({ min: 1, max: 4 }),
  maxHypervisorTokens: fc.integer({ min: 1, max: 3 }),
  budget: fc.record({
    ioBytesPerSec: fc.oneof(fc.constant(0), fc.integer({ min: 20, max: 300 })),
    cpuPercent: fc.oneof(fc.constant(0), fc.integer({ min: 100, max: 800 })),
  }),
  minStartGapMs: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: 5 }).map((m) => m * MIN),
  ),
});

/** Minutes, so that many times coincide: ties are where plans go wrong. */
const jobSpecArb = fc.record({
  kind: kindArb,
  vm: fc.integer({ min: 1, max: 6 }),
  startMin: fc.integer({ min: 0, max: 240 }),
  windowMin: fc.integer({ min: 1, max: 300 }),
  durationMin: fc.integer({ min: 1, max: 90 }),
  cost: costArb,
  priority: fc.integer({ min: 0, max: 2 }),
});

const runningSpecArb = fc.record({
  kind: kindArb,
  count: fc.integer({ min: 0, max: 3 }),
  endsMin: fc.array(fc.integer({ min: -10, max: 120 }), { minLength: 3, maxLength: 3 }),
});

type JobSpec = typeof jobSpecArb extends fc.Arbitrary<infer T> ? T : never;

/** A generated job as the planner takes it: times in minutes from T0. */
const planJob = (j: JobSpec, i: number): PlanJob => ({
  id: `j${i}`,
  kind: j.kind,
  vm: `vm${j.vm}`,
  earliestStart: T0 + j.startMin * MIN,
  windowEnd: T0 + (j.startMin + j.windowMin) * MIN,
  durationMs: j.durationMin * MIN,
  cost: j.cost,
  priority: j.priority,
});

const instanceArb = fc
  .record({
    host: hostArb,
    nowMin: fc.integer({ min: 0, max: 60 }),
    // Up to 40 jobs (fast-check's default size keeps arrays short): enough for contention on six VMs.
    jobs: fc.array(jobSpecArb, { maxLength: 40, size: 'max' }),
    running: runningSpecArb,
  })
  .map(({ host, nowMin, jobs, running }): PlanInput => {
    const now = T0 + nowMin * MIN;
    // Running backups as the lessor allows them: one kind, distinct VMs, within the cap; undeclared
    // costs, so that together they stay within the budget.
    const count = Math.min(running.count, running.kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens);
    const runningNow: RunningBackup[] = Array.from({ length: count }, (_, i) => ({
      kind: running.kind,
      vm: `vm${i + 1}`,
      expectedEnd: now + running.endsMin[i] * MIN,
      cost: { ioBytesPerSec: 0, cpuPercent: 0 },
    }));
    return {
      now,
      host,
      running: runningNow,
      jobs: jobs.map(planJob),
    };
  });

// ---- an independent checker ------------------------------------------------------------------------

const cap = (host: PlanHost, kind: TokenKind) => (kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens);

/** The cost the rules count: declared, or the budget ÷ the kind's cap when undeclared; 0 when unlimited. */
function counted(cost: Budget, kind: TokenKind, host: PlanHost): Budget {
  const one = (declared: number, budget: number) =>
    budget === 0 ? 0 : declared || Math.max(1, Math.floor(budget / cap(host, kind)));
  return {
    ioBytesPerSec: one(cost.ioBytesPerSec, host.budget.ioBytesPerSec),
    cpuPercent: one(cost.cpuPercent, host.budget.cpuPercent),
  };
}

interface Busy {
  kind: TokenKind;
  vm: string;
  start: number;
  end: number;
  cost: Budget;
  planned: boolean;
}

function occupancy(input: PlanInput, plan: Plan): Busy[] {
  const byId = new Map(input.jobs.map((j) => [j.id, j]));
  return [
    ...(input.running ?? [])
      .filter((r) => r.expectedEnd > input.now)
      .map((r) => ({
        kind: r.kind,
        vm: r.vm,
        start: input.now,
        end: r.expectedEnd,
        cost: counted(r.cost, r.kind, input.host),
        planned: false,
      })),
    ...plan.slots.map((s) => {
      const j = byId.get(s.id)!;
      return {
        kind: j.kind,
        vm: j.vm,
        start: s.start,
        end: s.end,
        cost: counted(j.cost, j.kind, input.host),
        planned: true,
      };
    }),
  ];
}

/** Every rule the backups break together; usage only rises at a start, so the starts are the instants to look at. */
function violations(busy: readonly Busy[], host: PlanHost): string[] {
  const found: string[] = [];
  for (const at of new Set(busy.map((b) => b.start))) {
    const now = busy.filter((b) => b.start <= at && at < b.end);
    const kinds = new Set(now.map((b) => b.kind));
    if (kinds.size > 1) found.push(`both kinds at ${at}`);
    if (new Set(now.map((b) => b.vm)).size < now.length) found.push(`two backups of a VM at ${at}`);
    for (const kind of kinds)
      if (now.filter((b) => b.kind === kind).length > cap(host, kind)) found.push(`${kind} cap at ${at}`);
    const sum = (f: (b: Busy) => number) => now.reduce((s, b) => s + f(b), 0);
    if (host.budget.ioBytesPerSec > 0 && sum((b) => b.cost.ioBytesPerSec) > host.budget.ioBytesPerSec)
      found.push(`I/O budget at ${at}`);
    if (host.budget.cpuPercent > 0 && sum((b) => b.cost.cpuPercent) > host.budget.cpuPercent)
      found.push(`CPU budget at ${at}`);
  }
  const starts = busy
    .filter((b) => b.planned)
    .map((b) => b.start)
    .sort((a, b) => a - b);
  for (let i = 1; i < starts.length; i++)
    if (starts[i] - starts[i - 1] < host.minStartGapMs) found.push(`starts ${starts[i - 1]} and ${starts[i]}`);
  return found;
}

function assertPlanKeepsTheRules(input: PlanInput, plan: Plan): void {
  const { now, host, jobs } = input;
  const placed = new Map(plan.slots.map((s) => [s.id, s]));
  const unplaced = new Map(plan.unplaced.map((u) => [u.id, u]));
  assert.equal(placed.size + unplaced.size, jobs.length, 'every job once');
  for (const j of jobs) {
    const slot = placed.get(j.id);
    if (slot) {
      assert.ok(!unplaced.has(j.id));
      assert.ok(slot.start >= j.earliestStart && slot.start >= now, `${j.id} starts in its window`);
      assert.equal(slot.end, slot.start + j.durationMs);
      assert.ok(slot.end <= j.windowEnd, `${j.id} ends in its window`);
      assert.deepEqual([slot.kind, slot.vm], [j.kind, j.vm]);
      continue;
    }
    const u = unplaced.get(j.id);
    assert.ok(u, `${j.id} is reported`);
    const c = counted(j.cost, j.kind, host);
    const tooCostly =
      (host.budget.ioBytesPerSec > 0 && c.ioBytesPerSec > host.budget.ioBytesPerSec) ||
      (host.budget.cpuPercent > 0 && c.cpuPercent > host.budget.cpuPercent);
    const expected =
      j.windowEnd - j.earliestStart < j.durationMs
        ? 'window-too-short'
        : j.windowEnd - now < j.durationMs
          ? 'window-passed'
          : tooCostly
            ? 'cost-exceeds-budget'
            : 'no-room';
    assert.equal(u.reason, expected, `reason for ${j.id}`);
    assert.equal(u.blockedBy !== undefined, expected === 'no-room');
  }
  assert.deepEqual(violations(occupancy(input, plan), host), []);
}

/** Starts where a job left out for want of room would fit in the final plan as it is (there must be none). */
function roomLeft(input: PlanInput, plan: Plan): string[] {
  const busy = occupancy(input, plan);
  // The earliest start that fits is the job's ready time, the end of a backup or a start plus the gap.
  const candidates = [
    ...busy.map((b) => b.end),
    ...busy.filter((b) => b.planned).map((b) => b.start + input.host.minStartGapMs),
  ];
  const found: string[] = [];
  for (const u of plan.unplaced.filter((x) => x.reason === 'no-room')) {
    const j = input.jobs.find((x) => x.id === u.id)!;
    const readyAt = Math.max(j.earliestStart, input.now);
    for (const start of [readyAt, ...candidates.filter((t) => t > readyAt)]) {
      if (start + j.durationMs > j.windowEnd) continue;
      const extra = {
        kind: j.kind,
        vm: j.vm,
        start,
        end: start + j.durationMs,
        cost: counted(j.cost, j.kind, input.host),
        planned: true,
      };
      if (violations([...busy, extra], input.host).length === 0) found.push(`${j.id} at ${start}`);
    }
  }
  return found;
}

/**
 * Small instances for the brute force: up to 5 jobs on 2 VMs in about 20 minutes, crowded on purpose, whole minutes
 * throughout, so a plan exists only if one with whole-minute starts does (moving every backup as early
 * as the rules let it lands each start on a ready time, an end or a start plus the gap: whole minutes).
 */
const smallInstanceArb = fc
  .record({
    host: hostArb.map((h) => ({ ...h, minStartGapMs: Math.min(h.minStartGapMs, 2 * MIN) })),
    nowMin: fc.integer({ min: 0, max: 3 }),
    jobs: fc.array(
      fc.record({
        kind: kindArb,
        vm: fc.integer({ min: 1, max: 2 }),
        startMin: fc.integer({ min: 0, max: 8 }),
        windowMin: fc.integer({ min: 1, max: 10 }),
        durationMin: fc.integer({ min: 1, max: 6 }),
        cost: costArb,
        priority: fc.integer({ min: 0, max: 2 }),
      }),
      { minLength: 2, maxLength: 5 },
    ),
    running: fc.record({
      kind: kindArb,
      count: fc.integer({ min: 0, max: 2 }),
      endsMin: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 3, maxLength: 3 }),
    }),
  })
  .map(({ host, nowMin, jobs, running }): PlanInput => {
    const now = T0 + nowMin * MIN;
    const count = Math.min(running.count, running.kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens);
    return {
      now,
      host,
      running: Array.from({ length: count }, (_, i) => ({
        kind: running.kind,
        vm: `vm${i + 1}`,
        expectedEnd: now + running.endsMin[i] * MIN,
        cost: { ioBytesPerSec: 0, cpuPercent: 0 },
      })),
      jobs: jobs.map(planJob),
    };
  });

/**
 * Whether some plan places every job given, trying every whole-minute start in each window, one job
 * after the other, and checking each partial plan with violations() (nothing of the planner's).
 */
function bruteForcePlanExists(input: PlanInput, jobs: readonly PlanJob[]): boolean {
  const fixed = occupancy(input, { slots: [], unplaced: [], phases: [] });
  const chosen: Busy[] = [];
  const visit = (i: number): boolean => {
    if (i === jobs.length) return true;
    const j = jobs[i];
    for (let start = Math.max(j.earliestStart, input.now); start + j.durationMs <= j.windowEnd; start += MIN) {
      chosen.push({
        kind: j.kind,
        vm: j.vm,
        start,
        end: start + j.durationMs,
        cost: counted(j.cost, j.kind, input.host),
        planned: true,
      });
      if (violations([...fixed, ...chosen], input.host).length === 0 && visit(i + 1)) return true;
      chosen.pop();
    }
    return false;
  };
  return visit(0);
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const k = s % (i + 1);
    [out[i], out[k]] = [out[k], out[i]];
  }
  return out;
}

describe('planHost (properties)', function () {
  // Hundreds of random hosts each, planned in full (favour-late step and repairs included): about 10 s apiece here.
  this.timeout(60_000);

  it('keeps every rule, keeps placed jobs in their windows and says exactly why the others are left out', () => {
    fc.assert(
      fc.property(instanceArb, (input) => assertPlanKeepsTheRules(input, planHost(input))),
      { numRuns: RUNS },
    );
  });

  it('leaves no job out that would fit in the final plan as it is', () => {
    fc.assert(
      fc.property(instanceArb, (input) => assert.deepEqual(roomLeft(input, planHost(input)), [])),
      { numRuns: RUNS },
    );
  });

  it('places every job of a host that could run them one at a time, by deadline', () => {
    // Built one at a time: each job starts after the previous one ended and the gap after its start,
    // with its cron time at or before that start and a window end after its end; window ends rise
    // strictly, so that deadline order is the order they were built in.
    const arb = fc.record({
      host: hostArb,
      specs: fc.array(
        fc.record({
          job: jobSpecArb,
          idleMin: fc.integer({ min: 0, max: 30 }),
          earlyMin: fc.integer({ min: 0, max: 60 }),
          slackMin: fc.integer({ min: 0, max: 60 }),
        }),
        { maxLength: 30, size: 'max' },
      ),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, ({ host, specs, seed }) => {
        let free = T0;
        let nextStart = -Infinity;
        let lastEnd = -Infinity;
        const jobs: PlanJob[] = specs.map(({ job, idleMin, earlyMin, slackMin }, i) => {
          const start = Math.max(free, nextStart) + idleMin * MIN;
          const durationMs = job.durationMin * MIN;
          const windowEnd = Math.max(lastEnd + 1, start + durationMs + slackMin * MIN);
          free = start + durationMs;
          nextStart = start + host.minStartGapMs;
          lastEnd = windowEnd;
          // Costs within the budget, so that each job fits alone.
          const cost = {
            ioBytesPerSec: host.budget.ioBytesPerSec && Math.min(job.cost.ioBytesPerSec, host.budget.ioBytesPerSec),
            cpuPercent: host.budget.cpuPercent && Math.min(job.cost.cpuPercent, host.budget.cpuPercent),
          };
          return {
            id: `j${i}`,
            kind: job.kind,
            vm: `vm${job.vm}`,
            earliestStart: Math.max(T0, start - earlyMin * MIN),
            windowEnd,
            durationMs,
            cost,
            priority: job.priority,
          };
        });
        const input = { now: T0, host, jobs: shuffled(jobs, seed) };
        const plan = planHost(input);
        assert.deepEqual(plan.unplaced, []);
        assertPlanKeepsTheRules(input, plan);
      }),
      { numRuns: RUNS },
    );
  });

  it('places every job that can run alone whenever a brute-force search finds a plan that does', () => {
    let decided = 0;
    fc.assert(
      fc.property(smallInstanceArb, (input) => {
        const plan = planHost(input);
        assertPlanKeepsTheRules(input, plan);
        const alone = new Set(plan.unplaced.filter((u) => u.reason !== 'no-room').map((u) => u.id));
        const placeable = input.jobs.filter((j) => !alone.has(j.id));
        const noRoom = plan.unplaced.filter((u) => u.reason === 'no-room');
        if (noRoom.length > 0 && bruteForcePlanExists(input, placeable))
          assert.fail(
            `a plan places all of ${placeable.map((j) => j.id)}; the planner left out ${noRoom.map((u) => u.id)}`,
          );
        if (noRoom.length > 0) decided++;
      }),
      // Small and quick: more runs, since a greedy plan that misses a feasible one is rare.
      { numRuns: propertyRuns(5 * FULL_RUNS) },
    );
    // The instances must include hosts too crowded for every job, or the property says little.
    assert.ok(decided > 0, 'no instance left a job out');
  });

  it('gives the same plan whatever the order of the jobs', () => {
    fc.assert(
      fc.property(instanceArb, fc.integer(), (input, seed) => {
        assert.deepEqual(planHost({ ...input, jobs: shuffled(input.jobs, seed) }), planHost(input));
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps its plan when replanned with it, and every slot when a job is removed from a plan that left none out for room', () => {
    fc.assert(
      fc.property(instanceArb, fc.nat(), (input, pick) => {
        const plan = planHost(input);
        assert.deepEqual(planHost({ ...input, previous: plan }), plan);
        if (input.jobs.length === 0 || plan.unplaced.some((u) => u.reason === 'no-room')) return;
        const removed = input.jobs[pick % input.jobs.length].id;
        const replanned = planHost({ ...input, jobs: input.jobs.filter((j) => j.id !== removed), previous: plan });
        assert.deepEqual(
          replanned.slots,
          plan.slots.filter((s) => s.id !== removed),
        );
      }),
      { numRuns: RUNS },
    );
  });
});

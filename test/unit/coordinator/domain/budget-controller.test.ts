import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import {
  type BudgetDecision,
  type BudgetState,
  type ControlledLease,
  baseBudget,
  decideBudget,
  grantedBudgetState,
  reducedBudget,
  unknownBudgetState,
} from '../../../../coordinator/domain/budget-controller';
import type { MachineLoad } from '../../../../coordinator/domain/load-signals';
import { type Budget, UNLIMITED } from '../../../../coordinator/domain/lease';
import { DEFAULT_POLICY, type HostPolicy, checkPolicy } from '../../../../coordinator/domain/policy';
import { T0 } from './fixtures';
import { propertyRuns } from '../../../helpers/property-runs';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;
const POLICY: Required<HostPolicy> = { ...DEFAULT_POLICY };
const REDUCED: Budget = { cpuPercent: 25, ioBytesPerSec: 10 * MiB };

function lease(over: Partial<ControlledLease['slot']> = {}, budget: Budget = UNLIMITED): ControlledLease {
  return { vm: 'vm1', slot: { start: T0, expectedEnd: T0 + HOUR, windowEnd: 0, ...over }, budget: { ...budget } };
}

function load(cpuPercent: number, over: Partial<MachineLoad> = {}): MachineLoad {
  return {
    cpuPercent,
    diskReadBytesPerSec: 0,
    diskWriteBytesPerSec: 0,
    backupCpuPercent: 0,
    backupIoBytesPerSec: 0,
    ...over,
  };
}

/** Feeds reports to the controller as an agent would, keeping its state; `at` is ms after T0. */
function controller(
  policy: Required<HostPolicy> = POLICY,
  l: ControlledLease = lease(),
  state: BudgetState = grantedBudgetState(l),
) {
  let current = state;
  return {
    report(at: number, vmLoad: MachineLoad): BudgetDecision {
      const d = decideBudget(policy, l, vmLoad, current, T0 + at);
      current = d.state;
      return d;
    },
    get state() {
      return current;
    },
  };
}

describe('budget controller', () => {
  it('leaves a backup alone while its VM is quiet', () => {
    const c = controller();
    for (let t = 0; t < 60_000; t += 10_000) assert.equal(c.report(t, load(40)).command, undefined);
    assert.equal(c.state.level, 'full');
  });

  it('throttles to the reduced budget as soon as the foreground CPU reaches the throttle threshold', () => {
    const c = controller();
    const d = c.report(10_000, load(60));
    assert.deepEqual(d.command, { budget: REDUCED, paused: false, reason: 'VM busy: foreground cpu 60% >= 60%' });
    assert.equal(c.state.level, 'throttled');
  });

  it('counts only the foreground: a busy backup on a quiet VM is not throttled by its own load', () => {
    const c = controller();
    assert.equal(c.report(10_000, load(95, { backupCpuPercent: 50 })).command, undefined);
    assert.equal(c.report(20_000, load(95, { backupCpuPercent: 30 })).command?.budget.cpuPercent, 25);
  });

  it('pauses at the pause threshold, keeping the reduced budget for when it resumes', () => {
    const d = controller().report(10_000, load(90));
    assert.deepEqual(d.command, { budget: REDUCED, paused: true, reason: 'VM busy: foreground cpu 90% >= 85%' });
  });

  it('holds a throttle while the load stays between the resume and throttle thresholds (hysteresis)', () => {
    const c = controller();
    c.report(0, load(70));
    for (let t = 10_000; t <= 300_000; t += 10_000) assert.equal(c.report(t, load(55)).command, undefined, `at ${t}`);
    assert.equal(c.state.level, 'throttled');
  });

  it('restores the full budget only once the load has stayed below the resume threshold for the dwell time', () => {
    const c = controller();
    c.report(0, load(70));
    assert.equal(c.report(10_000, load(30)).command, undefined);
    assert.equal(c.report(20_000, load(30)).command, undefined);
    assert.equal(c.report(30_000, load(30)).command, undefined, 'calm for 20 s only');
    const d = c.report(40_000, load(30));
    assert.deepEqual(d.command, { budget: UNLIMITED, paused: false, reason: 'VM calmer for 30s: foreground cpu 30%' });
  });

  it("names the host, not a VM, when it controls a command on the host by the host's own load", () => {
    let state = grantedBudgetState(lease());
    const paused = decideBudget(POLICY, lease(), load(90), state, T0, 'host');
    assert.equal(paused.command?.reason, 'host busy: foreground cpu 90% >= 85%');
    state = paused.state;
    assert.equal(
      decideBudget(POLICY, lease(), load(30), state, T0 + 10_000, 'host').command,
      undefined,
      'not calm for the dwell time yet',
    );
    const resumed = decideBudget(
      POLICY,
      lease(),
      load(30),
      decideBudget(POLICY, lease(), load(30), state, T0 + 10_000, 'host').state,
      T0 + 40_000,
      'host',
    );
    assert.deepEqual(resumed.command, {
      budget: UNLIMITED,
      paused: false,
      reason: 'host calmer for 30s: foreground cpu 30%',
    });
  });

  it('starts the calm over when the load rises again in between', () => {
    const c = controller();
    c.report(0, load(70));
    c.report(30_000, load(30));
    c.report(50_000, load(55)); // not calm enough for full: the count starts over
    assert.equal(c.report(70_000, load(30)).command, undefined);
    assert.equal(c.report(90_000, load(30)).command, undefined);
    assert.deepEqual(c.report(100_000, load(30)).command?.budget, UNLIMITED);
  });

  it('resumes a pause throttled when the load falls below the throttle threshold, and in full when it is calm', () => {
    const c = controller();
    c.report(0, load(90));
    for (let t = 10_000; t <= 60_000; t += 10_000) {
      assert.equal(
        c.report(t, load(70)).command,
        undefined,
        'still busy: the pause holds down to the throttle threshold',
      );
    }
    c.report(70_000, load(55));
    assert.equal(c.report(90_000, load(55)).command, undefined, 'calm for 20 s only');
    const resumed = c.report(100_000, load(55));
    assert.deepEqual([resumed.command?.paused, resumed.command?.budget], [false, REDUCED]);
    c.report(110_000, load(10));
    assert.equal(c.report(130_000, load(10)).command, undefined, 'calm for 20 s only');
    assert.deepEqual(c.report(140_000, load(10)).command?.budget, UNLIMITED);
    assert.equal(c.state.pausedMs, 100_000);
  });

  it('tightens at once even right after loosening: the VM comes first', () => {
    const c = controller();
    c.report(0, load(70));
    c.report(30_000, load(10));
    assert.deepEqual(c.report(60_000, load(10)).command?.budget, UNLIMITED);
    assert.equal(c.report(61_000, load(95)).command?.paused, true);
  });

  it('throttles instead of pausing when the pause could not last before the window guard', () => {
    // 8 min to the window's end, 3 min of expected work left, a 5 min guard: no room for a pause.
    const l = lease({ expectedEnd: T0 + 3 * 60_000, windowEnd: T0 + 8 * 60_000 });
    const d = controller(POLICY, l).report(0, load(95));
    assert.equal(d.command?.paused, false);
    assert.deepEqual(d.command?.budget, REDUCED);
    assert.equal(
      d.command?.reason,
      'VM busy: foreground cpu 95% >= 85%; throttled, not paused: its window ends in 8m, and its expected remaining 3m plus a 5m guard must still fit',
    );
  });

  it('ends a pause at the last report before the window guard, and does not pause again', () => {
    // Room for a pause of 10 min: 20 min to the window's end, 5 min of work left, a 5 min guard.
    const l = lease({ expectedEnd: T0 + 5 * 60_000, windowEnd: T0 + 20 * 60_000 });
    const c = controller({ ...POLICY, maxPauseMs: HOUR }, l);
    assert.equal(c.report(0, load(95)).command?.paused, true);
    for (let t = 10_000; t < 600_000; t += 10_000) assert.equal(c.report(t, load(95)).command, undefined, `at ${t}`);
    const d = c.report(600_000, load(95));
    assert.equal(d.command?.paused, false);
    assert.match(d.command!.reason, /^resumed throttled: its window ends in 10m/);
    for (let t = 610_000; t < 900_000; t += 10_000) assert.equal(c.report(t, load(95)).command, undefined, `at ${t}`);
  });

  it('pauses a backup for at most maxPauseMs in all, then runs it throttled however busy the VM is', () => {
    const c = controller({ ...POLICY, maxPauseMs: 120_000 });
    c.report(0, load(95));
    c.report(30_000, load(10));
    assert.equal(c.report(60_000, load(10)).command?.paused, false, 'resumed after 60 s');
    assert.equal(c.report(70_000, load(95)).command?.paused, true, 'paused again: 60 s of pause left');
    assert.equal(c.report(120_000, load(95)).command, undefined, 'the next report is due at the bound: still paused');
    assert.equal(
      c.report(125_000, load(95)).command?.paused,
      false,
      'ended now: the next report would be past the 2 min',
    );
    assert.equal(c.state.pausedMs, 115_000);
    assert.equal(c.report(300_000, load(95)).command, undefined, 'too little pause left to begin another');
    assert.equal(c.state.level, 'throttled');
  });

  it('never pauses when maxPauseMs is 0', () => {
    const d = controller({ ...POLICY, maxPauseMs: 0 }).report(0, load(95));
    assert.deepEqual([d.command?.paused, d.command?.budget], [false, REDUCED]);
  });

  it('throttles and pauses on foreground disk I/O when the policy sets I/O thresholds', () => {
    const policy = {
      ...POLICY,
      throttleAboveIoBytesPerSec: 50 * MiB,
      pauseAboveIoBytesPerSec: 200 * MiB,
      resumeBelowIoBytesPerSec: 20 * MiB,
    };
    const c = controller(policy);
    assert.equal(
      c.report(0, load(10, { diskReadBytesPerSec: 80 * MiB, backupIoBytesPerSec: 40 * MiB })).command,
      undefined,
    );
    assert.equal(
      c.report(10_000, load(10, { diskReadBytesPerSec: 60 * MiB, diskWriteBytesPerSec: 10 * MiB })).command?.reason,
      'VM busy: foreground io 70.0 MiB/s >= 50.0 MiB/s',
    );
    assert.equal(c.report(20_000, load(10, { diskWriteBytesPerSec: 250 * MiB })).command?.paused, true);
  });

  it('ignores a signal whose thresholds are off', () => {
    const c = controller({ ...POLICY, throttleAboveCpuPercent: 0, pauseAboveCpuPercent: 0 });
    assert.equal(c.report(0, load(100)).command, undefined);
  });

  it("takes the token's own budget as the full one and never throttles above it", () => {
    const l = lease({}, { cpuPercent: 10, ioBytesPerSec: 0 });
    assert.deepEqual(baseBudget({ ...POLICY, budgetCpuPercent: 80 }, l), { cpuPercent: 10, ioBytesPerSec: 0 });
    assert.deepEqual(reducedBudget(POLICY, { cpuPercent: 10, ioBytesPerSec: 0 }), {
      cpuPercent: 10,
      ioBytesPerSec: 10 * MiB,
    });
    assert.deepEqual(reducedBudget({ ...POLICY, throttledCpuPercent: 0 }, { cpuPercent: 0, ioBytesPerSec: 0 }), {
      cpuPercent: 0,
      ioBytesPerSec: 10 * MiB,
    });
  });

  it("gives a backup whose token carries no budget the host policy's, at the first report", () => {
    const c = controller({ ...POLICY, budgetCpuPercent: 80, budgetIoBytesPerSec: 50 * MiB });
    assert.deepEqual(c.report(0, load(10)).command, {
      budget: { cpuPercent: 80, ioBytesPerSec: 50 * MiB },
      paused: false,
      reason: "the host policy's budget for a full backup",
    });
    assert.equal(c.report(10_000, load(10)).command, undefined);
  });

  it('restates the budget of a backup found running after a restart, whatever it is', () => {
    const l = lease();
    const c = controller(POLICY, l, unknownBudgetState());
    assert.deepEqual(c.report(0, load(10)).command, {
      budget: UNLIMITED,
      paused: false,
      reason: "restating a full backup's budget: what the agent was told is not known",
    });
  });

  it('says nothing when the level changes but the budget does not', () => {
    const c = controller({ ...POLICY, throttledCpuPercent: 0, throttledIoBytesPerSec: 0 });
    assert.equal(c.report(0, load(70)).command, undefined);
    assert.equal(c.state.level, 'throttled');
  });
});

/** The pause deadline the policy promises, computed apart from the controller. */
function pauseBound(
  policy: Required<HostPolicy>,
  l: ControlledLease,
  pausedBefore: number,
  pauseStart: number,
): number {
  let bound = pauseStart + policy.maxPauseMs - pausedBefore;
  if (l.slot.windowEnd > 0) {
    const remaining = Math.max(0, l.slot.expectedEnd + pausedBefore - pauseStart);
    bound = Math.min(bound, l.slot.windowEnd - policy.pauseWindowGuardMs - remaining);
  }
  return bound;
}

const within = (b: Budget, base: Budget, reduced: Budget) =>
  (['cpuPercent', 'ioBytesPerSec'] as const).every((k) => {
    const atMost = (v: number, limit: number) => limit === 0 || (v !== 0 && v <= limit);
    return atMost(reduced[k], base[k]) && (b[k] === base[k] || b[k] === reduced[k]);
  });

describe("budget controller with a VM's own pressure thresholds", () => {
  // A VM that runs near capacity stalls on its own CPU at rest (cpu some 36-47 % measured in a guest): over
  // the host's throttle threshold (20 %), under its pause threshold (40 %).
  const POLICY_DB1: Required<HostPolicy> = {
    ...POLICY,
    vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 60, pauseAboveCpuPressurePercent: 80 } },
  };
  const psi = (cpu: number): Partial<MachineLoad> => ({
    cpuPressure: { someAvg10: cpu, fullAvg10: 0 },
    ioPressure: { someAvg10: 1, fullAvg10: 0 },
    memoryPressure: { someAvg10: 0, fullAvg10: 0 },
  });
  const vmLease = (vm: string) => ({ ...lease(), vm });

  it("keeps a VM's full budget under its own thresholds where the host's throttle another VM on the host", () => {
    const db = controller(POLICY_DB1, vmLease('db-1'));
    const web = controller(POLICY_DB1, vmLease('web-1'));
    assert.equal(db.report(0, load(10, psi(36))).command, undefined);
    assert.equal(db.state.level, 'full');
    assert.deepEqual(web.report(0, load(10, psi(36))).command, {
      budget: REDUCED,
      paused: false,
      reason: 'VM busy: cpu pressure 36.0% >= 20.0%',
    });
    // Its own throttle and pause thresholds; the resume threshold it does not give is the host's (10 %).
    assert.equal(db.report(10_000, load(10, psi(65))).command?.reason, 'VM busy: cpu pressure 65.0% >= 60.0%');
    assert.equal(db.report(20_000, load(10, psi(85))).command?.reason, 'VM busy: cpu pressure 85.0% >= 80.0%');
    assert.equal(db.state.level, 'paused');
  });

  it("does not cut a VM's adaptive budget under its own thresholds", () => {
    const policy: Required<HostPolicy> = { ...POLICY_DB1, budgetMode: 'adaptive' };
    const base = { ioBytesPerSec: 100 * MiB, cpuPercent: 0 };
    const db = controller(policy, { ...lease({}, base), vm: 'db-1' });
    const web = controller(policy, { ...lease({}, base), vm: 'web-1' });
    const used = { ...psi(36), backupIoBytesPerSec: 40 * MiB };
    assert.equal(db.report(0, load(10, used)).command, undefined);
    assert.equal(web.report(0, load(10, used)).command?.budget.ioBytesPerSec, 20 * MiB, 'half of what it used');
  });

  it("judges a hypervisor-level command by the host's thresholds, whatever the VM's own", () => {
    const d = decideBudget(POLICY_DB1, vmLease('db-1'), load(10, psi(36)), grantedBudgetState(lease()), T0, 'host');
    assert.equal(d.command?.reason, 'host busy: cpu pressure 36.0% >= 20.0%');
  });
});

describe('budget controller (property)', () => {
  const runs = propertyRuns(1000);

  const policyArb = fc
    .record({
      throttle: fc.integer({ min: 0, max: 99 }),
      pauseGap: fc.integer({ min: 1, max: 40 }),
      pauseOn: fc.boolean(),
      resume: fc.integer({ min: 1, max: 99 }),
      dwell: fc.integer({ min: 0, max: 120_000 }),
      report: fc.integer({ min: 1_000, max: 30_000 }),
      maxPause: fc.integer({ min: 0, max: 1_200_000 }),
      guard: fc.integer({ min: 0, max: 600_000 }),
      budgetCpu: fc.integer({ min: 0, max: 400 }),
      throttledCpu: fc.integer({ min: 0, max: 400 }),
    })
    .map((r): Required<HostPolicy> => {
      const pause = r.pauseOn ? Math.min(100, r.throttle + r.pauseGap) : 0;
      const lowest = Math.min(...[r.throttle, pause].filter((v) => v > 0));
      return {
        ...DEFAULT_POLICY,
        throttleAboveCpuPercent: r.throttle,
        pauseAboveCpuPercent: pause > r.throttle ? pause : 0,
        resumeBelowCpuPercent: lowest === Infinity ? 0 : Math.max(1, Math.min(r.resume, lowest - 1)),
        budgetDwellMs: r.dwell,
        reportIntervalMs: r.report,
        maxPauseMs: r.maxPause,
        pauseWindowGuardMs: r.guard,
        budgetCpuPercent: r.budgetCpu,
        throttledCpuPercent: r.throttledCpu,
      };
    })
    .filter((p) => checkPolicy(p).length === 0);

  const leaseArb = fc
    .record({
      expected: fc.integer({ min: 0, max: 2 * HOUR }),
      window: fc.option(fc.integer({ min: 0, max: 3 * HOUR }), { nil: undefined }),
    })
    .map(({ expected, window }) =>
      lease({ expectedEnd: T0 + expected, windowEnd: window === undefined ? 0 : T0 + expected + window }),
    );

  // Reports come at most one report interval apart (as a connected agent sends them), with CPU loads that
  // wander, jump and hover around thresholds.
  const reportsArb = fc.array(
    fc.record({
      gap: fc.double({ min: 0.01, max: 1, noNaN: true }),
      step: fc.integer({ min: -12, max: 12 }),
      jump: fc.oneof(
        { arbitrary: fc.constant(undefined), weight: 7 },
        { arbitrary: fc.integer({ min: 0, max: 100 }), weight: 1 },
      ),
    }),
    // Long runs (fast-check's default size keeps arrays short), so that pauses reach their bounds.
    { minLength: 1, maxLength: 300, size: 'max' },
  );

  it('keeps budgets within [reduced, base], loosens no sooner than the dwell, and bounds every pause', () => {
    fc.assert(
      fc.property(policyArb, leaseArb, reportsArb, (policy, l, reports) => {
        const base = baseBudget(policy, l);
        const reduced = reducedBudget(policy, base);
        let state = grantedBudgetState(l);
        let now = T0;
        let lastChange = T0;
        let pausedTotal = 0;
        let cpu = 50;
        for (const r of reports) {
          now += Math.max(1, Math.floor(r.gap * policy.reportIntervalMs));
          cpu = r.jump ?? Math.min(100, Math.max(0, cpu + r.step));
          const before = state;
          const d = decideBudget(policy, l, load(cpu), before, now);
          state = d.state;
          if (d.command) {
            assert.ok(
              within(d.command.budget, base, reduced),
              `budget ${JSON.stringify(d.command.budget)} outside [${JSON.stringify(reduced)}, ${JSON.stringify(base)}]`,
            );
            assert.deepEqual(state.told, { budget: d.command.budget, paused: d.command.paused });
          }
          assert.equal(state.level === 'paused', state.pausedSince !== undefined);
          assert.equal(state.told?.paused ?? false, state.level === 'paused');
          if (state.level === before.level) continue;
          const rank = { full: 0, throttled: 1, paused: 2 };
          if (rank[state.level] < rank[before.level]) {
            assert.ok(
              now - lastChange >= policy.budgetDwellMs,
              `loosened ${now - lastChange} ms after the last change (dwell ${policy.budgetDwellMs})`,
            );
          }
          if (before.level === 'paused') {
            // The pause ended no later than its bound: max pause in all, and the window guard.
            assert.ok(now <= pauseBound(policy, l, pausedTotal, before.pausedSince!), 'a pause outlived its bound');
            pausedTotal += now - before.pausedSince!;
            assert.ok(pausedTotal <= policy.maxPauseMs);
          }
          lastChange = now;
        }
        if (state.level === 'paused') assert.ok(now <= pauseBound(policy, l, pausedTotal, state.pausedSince!));
      }),
      { numRuns: runs },
    );
  });
  it("gives a VM's own pressure thresholds to that VM alone, and keeps the host's for every field it does not give", () => {
    const fields = ['throttleAboveCpuPressurePercent', 'pauseAboveCpuPressurePercent', 'resumeBelowCpuPressurePercent'];
    const overrideArb = fc
      .record({ throttle: fc.integer({ min: 0, max: 90 }), gap: fc.integer({ min: 1, max: 40 }), resume: fc.nat(89) })
      .chain(({ throttle, gap, resume }) =>
        fc.subarray(fields, { minLength: 1 }).map((given) => {
          const all = [throttle, Math.min(100, throttle + gap), Math.max(1, Math.min(resume, throttle - 1))];
          return Object.fromEntries(given.map((f) => [f, all[fields.indexOf(f)]]));
        }),
      )
      .map((own): Required<HostPolicy> => ({ ...DEFAULT_POLICY, vmPressure: { 'db-1': own } }))
      .filter((p) => checkPolicy(p).length === 0);
    const stallsArb = fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 60 });
    fc.assert(
      fc.property(overrideArb, stallsArb, (policy, stalls) => {
        // The same decisions as under a host policy that had the VM's thresholds as its own, for that VM;
        // as under no override at all, for any other VM.
        const asHost: Required<HostPolicy> = { ...policy, ...policy.vmPressure['db-1'], vmPressure: {} };
        const pairs = [
          [controller(policy, { ...lease(), vm: 'db-1' }), controller(asHost, { ...lease(), vm: 'db-1' })],
          [controller(policy, { ...lease(), vm: 'web-1' }), controller(DEFAULT_POLICY, { ...lease(), vm: 'web-1' })],
        ];
        stalls.forEach((cpu, i) => {
          const l = load(50, {
            cpuPressure: { someAvg10: cpu, fullAvg10: 0 },
            ioPressure: { someAvg10: 0, fullAvg10: 0 },
            memoryPressure: { someAvg10: 0, fullAvg10: 0 },
          });
          for (const [withOwn, reference] of pairs)
            assert.deepEqual(withOwn.report(i * 10_000, l), reference.report(i * 10_000, l));
        });
      }),
      { numRuns: runs },
    );
  });

  it('throttles, pauses and resumes by I/O pressure where the VM reports PSI, whatever its CPU percent', () => {
    const c = controller();
    const psi = (io: number) => ({
      cpuPressure: { someAvg10: 1, fullAvg10: 0 },
      ioPressure: { someAvg10: io, fullAvg10: 0 },
      memoryPressure: { someAvg10: 0, fullAvg10: 0 },
    });
    // 95% CPU would pause under the fallback; under PSI only stalls count.
    assert.equal(c.report(0, load(95, psi(2))).command, undefined);
    assert.deepEqual(c.report(10_000, load(10, psi(12.5))).command, {
      budget: REDUCED,
      paused: false,
      reason: 'VM busy: io pressure 12.5% >= 10.0%',
    });
    assert.equal(c.report(20_000, load(10, psi(30))).command?.reason, 'VM busy: io pressure 30.0% >= 25.0%');
    assert.equal(c.state.level, 'paused');
    assert.equal(c.report(30_000, load(10, psi(4))).command, undefined); // calm, but not for the dwell time yet
    assert.deepEqual(c.report(60_000, load(10, psi(4))).command, {
      budget: UNLIMITED,
      paused: false,
      reason: 'VM calmer for 30s: io pressure 4.0%, cpu pressure 1.0%, memory pressure 0.0%',
    });
  });

  it('throttles by the disk await where PSI is missing', () => {
    const c = controller();
    assert.equal(c.report(0, load(10, { diskAwaitMs: 12 })).command, undefined);
    assert.equal(
      c.report(10_000, load(10, { diskAwaitMs: 35 })).command?.reason,
      'VM busy: disk await 35.0 ms >= 20.0 ms',
    );
  });
  it('in adaptive mode cuts the budget by half at a rise of pressure, again each reaction time, and raises it by steps once calm', () => {
    const policy: Required<HostPolicy> = { ...POLICY, budgetMode: 'adaptive' };
    const c = controller(policy, lease({}, { ioBytesPerSec: 100 * MiB, cpuPercent: 0 }));
    const psi = (io: number, backupIo = 40 * MiB) => ({
      backupIoBytesPerSec: backupIo,
      cpuPressure: { someAvg10: 0, fullAvg10: 0 },
      ioPressure: { someAvg10: io, fullAvg10: 0 },
      memoryPressure: { someAvg10: 0, fullAvg10: 0 },
    });
    assert.equal(c.report(0, load(10, psi(2))).command, undefined, 'calm at its base budget: nothing to say');
    // I/O cut by half from what the backup used (40 MiB/s); CPU, of no limit, adapted up to 10 times the
    // throttled share (250 %) and cut by half from there.
    assert.deepEqual(c.report(10_000, load(10, psi(15))).command, {
      budget: { ioBytesPerSec: 20 * MiB, cpuPercent: 125 },
      paused: false,
      reason: 'VM busy: io pressure 15.0% >= 10.0%',
    });
    assert.equal(c.report(20_000, load(10, psi(15))).command, undefined, 'PSI lags a cut: not again within 2 reports');
    assert.deepEqual(c.report(30_000, load(10, psi(15))).command, {
      budget: { ioBytesPerSec: 10 * MiB, cpuPercent: 63 },
      paused: false,
      reason: 'adaptive budget cut: VM busy: io pressure 15.0% >= 10.0%',
    });
    assert.equal(c.report(40_000, load(10, psi(2))).command, undefined, 'no raise sooner than the dwell after a cut');
    const raised = c.report(60_000, load(10, psi(2))).command;
    // Each + a tenth of the way from the throttled budget to the top: 9 MiB/s, 22.5 %.
    assert.deepEqual(raised?.budget, { ioBytesPerSec: 19 * MiB, cpuPercent: 85 });
    assert.match(raised!.reason, /^adaptive budget raised: VM calm: io pressure 2\.0%/);
    // The pause thresholds still pause.
    assert.equal(c.report(70_000, load(10, psi(30))).command?.paused, true);
    // Calm long enough, every limit climbs back to its base: no limit for the CPU.
    for (let t = 80_000; t <= 800_000; t += 10_000) c.report(t, load(10, psi(2)));
    assert.deepEqual(c.state.told?.budget, { ioBytesPerSec: 100 * MiB, cpuPercent: 0 });
  });
});

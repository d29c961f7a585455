import { strict as assert } from 'node:assert';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { PendingRequest } from '../../../../coordinator/domain/lease';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import {
  type HostConditions,
  type PlannedRun,
  forcedFrom,
  indexPlan,
  matchPlannedRun,
  PLAN_CLOCK_SKEW_MS,
  startDecision,
} from '../../../../coordinator/domain/start-gate';
import { T0, newLessor, req } from './fixtures';

const MIN = 60_000;
const HOUR = 60 * MIN;

function pending(partial: Partial<PendingRequest> = {}): PendingRequest {
  return { ...req({ kind: 'GUEST', vm: 'vm1' }), queuedAt: T0, seq: 1, ...partial };
}

function run(partial: Partial<PlannedRun> = {}): PlannedRun {
  return {
    kind: 'GUEST',
    vm: 'vm1',
    job: 'nightly',
    start: T0 + 10 * MIN,
    earliestStart: T0,
    windowEnd: T0 + 4 * HOUR,
    ...partial,
  };
}

const ZERO = { someAvg10: 0, fullAvg10: 0 };

const conditions = (c: Partial<HostConditions> = {}): HostConditions => ({ plan: new Map(), vmLoad: new Map(), ...c });

const grants = (events: LessorEvent[]) =>
  events.filter((e): e is Extract<LessorEvent, { type: 'granted' }> => e.type === 'granted');

describe('start gate', () => {
  it('holds a planned run until its slot, and lets it go from then on', () => {
    const c = conditions({ plan: indexPlan([run()]) });
    const r = pending({ windowEnd: T0 + 4 * HOUR });
    const held = startDecision(r, c, DEFAULT_POLICY, T0);
    assert.deepEqual(held, {
      start: false,
      until: T0 + 10 * MIN,
      reason: `its planned slot starts at ${new Date(T0 + 10 * MIN).toISOString()}`,
    });
    assert.deepEqual(startDecision(r, c, DEFAULT_POLICY, T0 + 10 * MIN), { start: true, forced: false });
    assert.deepEqual(
      startDecision(r, c, { ...DEFAULT_POLICY, followPlan: false }, T0),
      { start: true, forced: false },
      'unless the host does not follow its plan',
    );
  });

  it('matches a request to the run of the same kind, VM and job whose window is nearest to its own', () => {
    const plan = indexPlan([
      run({ windowEnd: T0 + 4 * HOUR, start: T0 + 1 }),
      run({ windowEnd: T0 + 28 * HOUR, start: T0 + 2 }),
    ]);
    assert.equal(matchPlannedRun(pending({ windowEnd: T0 + 28 * HOUR + 30_000 }), plan, T0)?.start, T0 + 2);
    assert.equal(matchPlannedRun(pending({ windowEnd: T0 + 4 * HOUR - 30_000 }), plan, T0)?.start, T0 + 1);
    assert.equal(
      matchPlannedRun(pending({ windowEnd: T0 + 10 * HOUR }), plan, T0),
      undefined,
      'no run that far from its window',
    );
    assert.equal(matchPlannedRun(pending({ job: 'other', windowEnd: T0 + 4 * HOUR }), plan, T0), undefined);
    assert.equal(matchPlannedRun(pending({ kind: 'HYPERVISOR', windowEnd: T0 + 4 * HOUR }), plan, T0), undefined);
    assert.equal(
      matchPlannedRun(pending({ windowEnd: 0 }), plan, T0 + HOUR)?.start,
      T0 + 1,
      'without a window: the run whose window holds now',
    );
  });

  it('never holds a request for a slot past its own window, nor for an occurrence not yet due when it came', () => {
    // issue 15: a hand-run of a job with a 50 s window, 21 s before the job's next cron time, was held for that
    // occurrence's slot 9 s after its own window ended, then denied WINDOW_CLOSED.
    const cron = T0 + 21_000;
    const occurrence = run({ earliestStart: cron, windowEnd: cron + 50_000, start: cron + 38_000 });
    const c = conditions({ plan: indexPlan([occurrence]) });
    const handRun = pending({ queuedAt: T0, latestStart: T0 + 50_000, windowEnd: T0 + 50_000 });
    assert.deepEqual(startDecision(handRun, c, DEFAULT_POLICY, T0), { start: true, forced: false });
    const inside = conditions({ plan: indexPlan([{ ...occurrence, start: cron + 10_000 }]) });
    assert.deepEqual(
      startDecision(handRun, inside, DEFAULT_POLICY, T0),
      { start: true, forced: false },
      'a slot inside its window, but of an occurrence due after it came, is not its own either',
    );
    const scheduled = pending({ queuedAt: cron, latestStart: cron + 30_000, windowEnd: cron + 50_000 });
    assert.deepEqual(
      startDecision(scheduled, c, DEFAULT_POLICY, cron),
      { start: true, forced: false },
      'nor a slot past its latest start',
    );
    assert.equal(
      matchPlannedRun({ ...scheduled, latestStart: 0 }, c.plan, cron)?.start,
      cron + 38_000,
      'the occurrence itself, its slot inside its window: held for it',
    );
    assert.equal(
      matchPlannedRun({ ...scheduled, latestStart: 0, queuedAt: cron - PLAN_CLOCK_SKEW_MS }, c.plan, cron)?.start,
      cron + 38_000,
      'sent by a guest whose clock is a little ahead',
    );
  });

  it('holds a backup while its VM is busy, until the figure goes stale', () => {
    const c = conditions({ vmLoad: new Map([['vm1', { cpuPercent: 75, ioBytesPerSec: 0, at: T0 }]]) });
    const d = startDecision(pending(), c, DEFAULT_POLICY, T0 + 1_000);
    assert.deepEqual(d, {
      start: false,
      until: T0 + 3 * DEFAULT_POLICY.reportIntervalMs,
      reason: 'VM vm1 foreground cpu 75% ≥ 60%',
    });
    assert.deepEqual(startDecision(pending(), c, DEFAULT_POLICY, T0 + 3 * DEFAULT_POLICY.reportIntervalMs + 1), {
      start: true,
      forced: false,
    });
    assert.deepEqual(
      startDecision(pending({ vm: 'vm2' }), c, DEFAULT_POLICY, T0),
      { start: true, forced: false },
      'another VM is not held',
    );
    assert.deepEqual(
      startDecision(pending(), c, { ...DEFAULT_POLICY, startBelowCpuPercent: 0 }, T0),
      { start: true, forced: false },
      'a threshold of 0 is off',
    );
  });

  it("judges a VM by its own thresholds where it has them, in place of the host's", () => {
    const c = conditions({
      vmLoad: new Map([
        ['db-1', { cpuPercent: 40, ioBytesPerSec: 0, at: T0 }],
        ['web-1', { cpuPercent: 75, ioBytesPerSec: 0, at: T0 }],
      ]),
    });
    const policy = {
      ...DEFAULT_POLICY,
      vmStartBelow: { 'db-1': { cpuPercent: 30, ioBytesPerSec: 0 }, 'web-1': { cpuPercent: 90, ioBytesPerSec: 0 } },
    };
    assert.equal(
      (startDecision(pending({ vm: 'db-1' }), c, policy, T0) as { reason: string }).reason,
      'VM db-1 foreground cpu 40% ≥ 30%',
    );
    assert.deepEqual(startDecision(pending({ vm: 'web-1' }), c, policy, T0), { start: true, forced: false });
    assert.equal(
      startDecision(pending({ vm: 'web-1' }), c, DEFAULT_POLICY, T0).start,
      false,
      "by the host's 60 % it would wait",
    );
  });

  it('holds every backup while the host has no headroom, by CPU or by disk I/O', () => {
    const hot = conditions({ hostLoad: { cpuPercent: 95, ioBytesPerSec: 0, at: T0 } });
    assert.equal(
      (startDecision(pending(), hot, DEFAULT_POLICY, T0) as { reason: string }).reason,
      'host cpu 95% ≥ 90%',
    );
    const io = conditions({ hostLoad: { cpuPercent: 10, ioBytesPerSec: 500, at: T0 } });
    assert.equal(startDecision(pending(), io, DEFAULT_POLICY, T0).start, true, 'host I/O is off by default');
    assert.equal(
      (startDecision(pending(), io, { ...DEFAULT_POLICY, hostStartBelowIoBytesPerSec: 400 }, T0) as { reason: string })
        .reason,
      'host disk I/O 500 B/s ≥ 400 B/s',
    );
  });

  it('starts a held backup anyway, forced, once waiting longer would miss its window', () => {
    const busy = conditions({ vmLoad: new Map([['vm1', { cpuPercent: 99, ioBytesPerSec: 0, at: T0 + HOUR }]]) });
    const r = pending({ windowEnd: T0 + 2 * HOUR, expectedDurationMs: 30 * MIN });
    assert.equal(forcedFrom(r), T0 + HOUR, 'twice its expected duration before the window ends');
    assert.equal(startDecision(r, busy, DEFAULT_POLICY, T0 + HOUR - 1).start, false);
    assert.deepEqual(startDecision(r, busy, DEFAULT_POLICY, T0 + HOUR), {
      start: true,
      forced: true,
      reason: 'VM vm1 foreground cpu 99% ≥ 60%, but waiting longer would miss its window',
    });
    assert.equal(
      forcedFrom(pending({ windowEnd: T0 + 2 * HOUR, expectedDurationMs: 0 })),
      T0 + HOUR,
      'half its window when it declares no duration',
    );
    assert.equal(
      forcedFrom(pending({ latestStart: T0 + MIN, windowEnd: T0 + 2 * HOUR })),
      T0 + MIN,
      'its latest start if that comes first',
    );
    assert.equal(forcedFrom(pending()), Infinity, 'never, without a window or a latest start');
  });
});

describe('Lessor with the start gate', () => {
  it('grants a planned request at its slot, on the next tick after it', () => {
    const { lessor, clock } = newLessor();
    lessor.ensureHost('h1');
    lessor.setPlan('h1', [run({ start: T0 + 10 * MIN })]);
    const r = req({ kind: 'GUEST', vm: 'vm1', windowEnd: T0 + 4 * HOUR });
    assert.equal(lessor.acquire(r).result.status, 'queued');
    const [info] = lessor.waiting('h1');
    assert.equal(info.held, true);
    assert.equal(info.estimatedStart, T0 + 10 * MIN);
    assert.equal(lessor.nextDeadline(), T0 + 10 * MIN);
    clock.advance(10 * MIN);
    assert.deepEqual(
      grants(lessor.tick()).map((g) => g.lease.requestId),
      [r.requestId],
    );
  });

  it('does not let a held request hold back the other kind', () => {
    const { lessor } = newLessor();
    lessor.ensureHost('h1');
    lessor.setPlan('h1', [run({ start: T0 + 10 * MIN })]);
    lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', windowEnd: T0 + 4 * HOUR }));
    assert.equal(lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm2' })).result.status, 'granted');
  });

  it('grants a request held by its busy VM as soon as the VM calms down', () => {
    const { lessor } = newLessor();
    lessor.ensureHost('h1');
    lessor.setVmLoad('h1', 'vm1', { cpuPercent: 80, ioBytesPerSec: 0, at: T0 });
    const r = req({ kind: 'GUEST', vm: 'vm1' });
    assert.equal(lessor.acquire(r).result.status, 'queued');
    assert.equal(lessor.waiting('h1')[0].waitingFor, 'VM vm1 foreground cpu 80% ≥ 60%');
    const events = lessor.setVmLoad('h1', 'vm1', { cpuPercent: 20, ioBytesPerSec: 0, at: T0 });
    assert.deepEqual(
      grants(events).map((g) => g.lease.requestId),
      [r.requestId],
    );
  });

  it('forces a start on a busy VM on the throttled budget, and says why in the grant', () => {
    const { lessor, clock } = newLessor({
      defaultPolicy: { ...DEFAULT_POLICY, budgetCpuPercent: 200, throttledCpuPercent: 25, throttledIoBytesPerSec: 0 },
    });
    lessor.ensureHost('h1');
    const r = req({ kind: 'GUEST', vm: 'vm1', windowEnd: T0 + 2 * HOUR, expectedDurationMs: 30 * MIN });
    lessor.setVmLoad('h1', 'vm1', { cpuPercent: 99, ioBytesPerSec: 0, at: T0 });
    assert.equal(lessor.acquire(r).result.status, 'queued');
    // Keep the VM busy with fresh reports until the forced start.
    for (let t = 0; t < HOUR; t += 10_000) {
      clock.advance(10_000);
      lessor.setVmLoad('h1', 'vm1', { cpuPercent: 99, ioBytesPerSec: 0, at: clock.now() });
      lessor.tick();
      if (clock.now() < T0 + HOUR) assert.equal(lessor.activeLeases('h1').length, 0, `held at +${clock.now() - T0} ms`);
    }
    const [lease] = lessor.activeLeases('h1');
    assert.equal(lease.requestId, r.requestId);
    assert.deepEqual(lease.budget, { cpuPercent: 25, ioBytesPerSec: 0 });
  });

  it("gives a hypervisor token the policy's hypervisor budget", () => {
    const { lessor } = newLessor({
      defaultPolicy: { ...DEFAULT_POLICY, hypervisorBudgetCpuPercent: 150, hypervisorBudgetIoBytesPerSec: 1 << 20 },
    });
    const { events } = lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm1' }));
    assert.deepEqual(grants(events)[0].lease.budget, { cpuPercent: 150, ioBytesPerSec: 1 << 20 });
  });
});

describe("start gate: a VM frozen by the hypervisor's own tools", () => {
  const freeze = { source: 'qemu-guest-agent', since: T0, until: T0 + 10 * MIN };
  const frozen = conditions({ frozen: new Map([['vm1', freeze]]) });
  const reason = `VM vm1 frozen by qemu-guest-agent since ${new Date(T0).toISOString()} (held until the thaw, at most until ${new Date(T0 + 10 * MIN).toISOString()})`;

  it('holds GUEST backups of that VM until the bound, and nothing else', () => {
    assert.deepEqual(startDecision(pending(), frozen, DEFAULT_POLICY, T0 + MIN), {
      start: false,
      until: T0 + 10 * MIN,
      reason,
    });
    assert.deepEqual(
      startDecision(pending(), frozen, DEFAULT_POLICY, T0 + 10 * MIN),
      { start: true, forced: false },
      'the bound passed',
    );
    assert.deepEqual(
      startDecision(pending({ vm: 'vm2' }), frozen, DEFAULT_POLICY, T0),
      { start: true, forced: false },
      'another VM',
    );
    assert.deepEqual(
      startDecision(pending({ kind: 'HYPERVISOR' }), frozen, DEFAULT_POLICY, T0),
      { start: true, forced: false },
      'the hypervisor backup the freeze is for',
    );
  });

  it('is not overridden by a closing window, unlike the load: the bound is its own limit', () => {
    const r = pending({ windowEnd: T0 + 4 * MIN, expectedDurationMs: MIN });
    assert.ok(forcedFrom(r) < T0 + 3 * MIN);
    assert.deepEqual(startDecision(r, frozen, DEFAULT_POLICY, T0 + 3 * MIN), {
      start: false,
      until: T0 + 10 * MIN,
      reason,
    });
  });

  it("lessor: queues the frozen VM's guest backups with the reason, grants other VMs', and grants on the thaw", () => {
    const { lessor, clock } = newLessor();
    lessor.ensureHost('h1');
    const running = lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', job: 'running' }));
    const other = lessor.acquire(req({ kind: 'GUEST', vm: 'vm3' }));
    assert.equal(running.result.status, 'granted');
    assert.equal(other.result.status, 'granted');
    const [frozenEvent] = lessor.freezeVm('h1', 'vm1', 'qemu-guest-agent', 10 * MIN);
    assert.equal(frozenEvent.type, 'vm-frozen');
    assert.deepEqual(
      frozenEvent.type === 'vm-frozen' && frozenEvent.guests.map((l) => l.job),
      ['running'],
      'the running guest backup of vm1, to pause',
    );
    const lease = lessor.activeLeases('h1').find((l) => l.vm === 'vm1')!;
    lessor.release(lease.tokenId, lease.fencing, { success: true, bytes: 0, durationMs: 0, exitCode: 0, message: '' });

    clock.advance(MIN);
    const held = req({ kind: 'GUEST', vm: 'vm1' });
    assert.equal(lessor.acquire(held).result.status, 'queued');
    assert.equal(lessor.waiting('h1')[0].waitingFor, reason);
    assert.equal(lessor.waiting('h1')[0].held, true);
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm2' })).result.status, 'granted');
    assert.deepEqual(
      lessor.freezeVm('h1', 'vm1', 'qemu-guest-agent', 10 * MIN),
      [],
      'said again (a reconnect): no new event',
    );
    assert.match(
      lessor.waiting('h1')[0].waitingFor,
      new RegExp(`since ${new Date(T0).toISOString()} .*at most until ${new Date(T0 + 11 * MIN).toISOString()}`),
      'the bound moved, not the start',
    );

    const events = lessor.thawVm('h1', 'vm1');
    assert.deepEqual(events[0], {
      type: 'vm-thawed',
      at: T0 + MIN,
      host: 'h1',
      vm: 'vm1',
      source: 'qemu-guest-agent',
      since: T0,
      lapsed: false,
      guests: [],
    });
    assert.deepEqual(
      grants(events).map((g) => g.lease.requestId),
      [held.requestId],
    );
    assert.deepEqual(lessor.thawVm('h1', 'vm1'), [], 'a thaw of a VM not frozen changes nothing');
  });

  it('lessor: releases the hold when the bound passes without a thaw, and says it lapsed', () => {
    const { lessor, clock } = newLessor();
    lessor.ensureHost('h1');
    lessor.freezeVm('h1', 'vm1', 'qemu-guest-agent', 5 * MIN);
    const held = req({ kind: 'GUEST', vm: 'vm1' });
    assert.equal(lessor.acquire(held).result.status, 'queued');
    assert.equal(lessor.nextDeadline(), T0 + 5 * MIN);
    clock.advance(5 * MIN - 1);
    assert.deepEqual(grants(lessor.tick()), []);
    clock.advance(1);
    const events = lessor.tick();
    assert.deepEqual(
      events.find((e) => e.type === 'vm-thawed'),
      {
        type: 'vm-thawed',
        at: T0 + 5 * MIN,
        host: 'h1',
        vm: 'vm1',
        source: 'qemu-guest-agent',
        since: T0,
        lapsed: true,
        guests: [],
      },
    );
    assert.deepEqual(
      grants(events).map((g) => g.lease.requestId),
      [held.requestId],
    );
    assert.equal(lessor.nextDeadline(), lessor.activeLeases('h1')[0].expiresAt, 'no freeze deadline left');
  });
  it('holds a start while a pressure signal in force is at its throttle threshold, and not for CPU then', () => {
    const waits = (io: number) => ({
      cpuPressure: { someAvg10: 0, fullAvg10: 0 },
      ioPressure: { someAvg10: io, fullAvg10: 0 },
      memoryPressure: { someAvg10: 0, fullAvg10: 0 },
    });
    const r = pending({ windowEnd: T0 + 4 * HOUR });
    const at = (io: number, cpuPercent = 0) =>
      conditions({ vmLoad: new Map([['vm1', { cpuPercent, ioBytesPerSec: 0, waits: waits(io), at: T0 }]]) });
    const held = startDecision(r, at(10), DEFAULT_POLICY, T0);
    assert.equal(held.start, false);
    assert.equal(held.start === false && held.reason, 'VM vm1 io pressure 10.0% ≥ 10.0%');
    assert.deepEqual(startDecision(r, at(9.9, 99), DEFAULT_POLICY, T0), { start: true, forced: false });
    const host = conditions({ hostLoad: { cpuPercent: 0, ioBytesPerSec: 0, waits: { diskAwaitMs: 25 }, at: T0 } });
    const byAwait = startDecision(r, host, DEFAULT_POLICY, T0);
    assert.equal(byAwait.start === false && byAwait.reason, 'host disk await 25.0 ms ≥ 20.0 ms');
  });

  it("judges a VM's load by its own pressure thresholds, another VM's and the host's by the host's", () => {
    // A VM that stalls on its own CPU at rest: 45 % cpu some, over the host's 20 % throttle threshold.
    const waits = { cpuPressure: { someAvg10: 45, fullAvg10: 0 }, ioPressure: ZERO, memoryPressure: ZERO };
    const load = { cpuPercent: 0, ioBytesPerSec: 0, waits, at: T0 };
    const c = conditions({
      vmLoad: new Map([
        ['db-1', load],
        ['web-1', load],
      ]),
      hostLoad: load,
    });
    const policy = {
      ...DEFAULT_POLICY,
      vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 60, pauseAboveCpuPressurePercent: 80 } },
    };
    const r = (vm: string) => pending({ vm, windowEnd: T0 + 4 * HOUR });
    const reason = (d: ReturnType<typeof startDecision>) => (d.start ? 'started' : d.reason);
    assert.equal(reason(startDecision(r('web-1'), c, policy, T0)), 'VM web-1 cpu pressure 45.0% ≥ 20.0%');
    assert.equal(
      reason(startDecision(r('db-1'), c, policy, T0)),
      'host cpu pressure 45.0% ≥ 20.0%',
      "past its own thresholds, the host's still judge the host's load",
    );
    assert.deepEqual(startDecision(r('db-1'), { ...c, hostLoad: undefined }, policy, T0), {
      start: true,
      forced: false,
    });
    const hotter = new Map([['db-1', { ...load, waits: { ...waits, cpuPressure: { someAvg10: 61, fullAvg10: 0 } } }]]);
    assert.equal(
      reason(startDecision(r('db-1'), conditions({ vmLoad: hotter }), policy, T0)),
      'VM db-1 cpu pressure 61.0% ≥ 60.0%',
    );
  });
});

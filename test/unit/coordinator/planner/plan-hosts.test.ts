import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { TargetLimits } from '../../../../coordinator/domain/targets';
import { planHosts, targetUses } from '../../../../coordinator/planner/plan-hosts';
import { planHost } from '../../../../coordinator/planner/planner';
import type { Plan, PlanHost, PlanInput, PlanJob } from '../../../../coordinator/planner/types';
import { propertyRuns } from '../../../helpers/property-runs';
import { T0, planJob } from '../domain/fixtures';

const MIN = 60_000;
const MIB = 1024 * 1024;
const HOST: PlanHost = {
  maxGuestTokens: 4,
  maxHypervisorTokens: 1,
  budget: { ioBytesPerSec: 0, cpuPercent: 0 },
  minStartGapMs: 0,
};
const PBS: TargetLimits = { name: 'pbs', maxConcurrent: 2, ioBytesPerSec: 100 * MIB };

/** The most slots of `plans` on the target at once, and the most of its I/O at once. */
function peak(plans: Iterable<Plan>, target: TargetLimits): { backups: number; io: number } {
  const uses = [...plans].flatMap((p) => targetUses(target, p.slots));
  let backups = 0;
  let io = 0;
  for (const u of uses) {
    const at = uses.filter((v) => v.start <= u.start && u.start < v.end);
    backups = Math.max(backups, at.length);
    io = Math.max(
      io,
      at.reduce((sum, v) => sum + v.io, 0),
    );
  }
  return { backups, io };
}

function hostInput(jobs: PlanJob[]): Omit<PlanInput, 'targets'> {
  return { now: T0, host: HOST, jobs };
}

describe('planHosts (shared targets across hosts)', () => {
  it("keeps a target's concurrency across hosts that would each fill it alone, moving the later host's runs", () => {
    const jobs = (h: string) =>
      ['a', 'b'].map((vm) => planJob(`${h}/${vm}`, { vm, target: 'pbs', windowEnd: T0 + 90 * MIN }));
    const hosts = new Map(['h1', 'h2'].map((h) => [h, hostInput(jobs(h))]));
    // Each host alone starts both its jobs at T0: four on a target of two.
    const alone = [...hosts.values()].map((input) => planHost({ ...input, targets: [{ ...PBS, others: [] }] }));
    assert.equal(peak(alone, PBS).backups, 4);
    const plans = planHosts(hosts, [PBS]);
    assert.equal(peak(plans.values(), PBS).backups, 2);
    // h1 is planned first and takes T0; h2 runs after it, still inside its window.
    assert.deepEqual(
      plans.get('h2')!.slots.map((s) => (s.start - T0) / MIN),
      [30, 30],
    );
    assert.ok(plans.get('h2')!.slots.every((s) => s.target === 'pbs' && s.targetIo === 50 * MIB));
  });

  it('leaves a run out for room when the other hosts fill the target over its whole window', () => {
    const hosts = new Map([
      ['h1', hostInput(['a', 'b'].map((vm) => planJob(`h1/${vm}`, { vm, target: 'pbs', windowEnd: T0 + 30 * MIN })))],
      ['h2', hostInput([planJob('h2/c', { vm: 'c', target: 'pbs', windowEnd: T0 + 30 * MIN })])],
    ]);
    const plans = planHosts(hosts, [PBS]);
    assert.deepEqual(plans.get('h2')!.unplaced, [{ id: 'h2/c', reason: 'no-room', blockedBy: 'target-full' }]);
  });

  it('never plans a target over its limits, whatever the hosts declare (random nights)', () => {
    const jobArb = fc.record({
      host: fc.constantFrom('h1', 'h2', 'h3'),
      vm: fc.constantFrom('a', 'b', 'c'),
      target: fc.constantFrom('pbs', ''),
      startMin: fc.integer({ min: 0, max: 60 }),
      windowMin: fc.integer({ min: 10, max: 180 }),
      durationMin: fc.integer({ min: 1, max: 40 }),
      ioMiB: fc.constantFrom(0, 20, 40, 70),
    });
    fc.assert(
      fc.property(fc.array(jobArb, { maxLength: 24 }), (specs) => {
        const hosts = new Map<string, Omit<PlanInput, 'targets'>>();
        specs.forEach((s, i) => {
          const input = hosts.get(s.host) ?? hostInput([]);
          const job = planJob(`${s.host}/${i}`, {
            vm: s.vm,
            earliestStart: T0 + s.startMin * MIN,
            windowEnd: T0 + (s.startMin + s.windowMin) * MIN,
            durationMs: s.durationMin * MIN,
            cost: { ioBytesPerSec: s.ioMiB * MIB, cpuPercent: 0 },
            ...(s.target ? { target: s.target } : {}),
          });
          hosts.set(s.host, { ...input, jobs: [...input.jobs, job] });
        });
        const plans = planHosts(hosts, [PBS]);
        const p = peak(plans.values(), PBS);
        assert.ok(p.backups <= PBS.maxConcurrent, `${p.backups} backups at once on pbs`);
        assert.ok(p.io <= PBS.ioBytesPerSec, `${p.io} B/s at once on pbs`);
      }),
      { numRuns: propertyRuns(200) },
    );
  });
});

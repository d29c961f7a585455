/**
 * HostTimeline.remove(): a timeline that took slots and gave some back answers every question as one
 * that only ever took the others (the exact search of plan-search.ts backtracks on it).
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { HostTimeline } from '../../../../coordinator/planner/host-timeline';
import type { Need, PlanHost } from '../../../../coordinator/planner/types';
import { propertyRuns } from '../../../helpers/property-runs';

const MIN = 60_000;

const hostArb: fc.Arbitrary<PlanHost> = fc.record({
  maxGuestTokens: fc.integer({ min: 1, max: 3 }),
  maxHypervisorTokens: fc.integer({ min: 1, max: 2 }),
  budget: fc.record({ ioBytesPerSec: fc.constantFrom(0, 100), cpuPercent: fc.constantFrom(0, 200) }),
  minStartGapMs: fc.constantFrom(0, MIN, 3 * MIN),
});

const slotArb = fc.record({
  need: fc.record({
    kind: fc.constantFrom<Need['kind']>('GUEST', 'HYPERVISOR'),
    vm: fc.constantFrom('vm1', 'vm2', 'vm3'),
    io: fc.integer({ min: 0, max: 60 }),
    cpu: fc.integer({ min: 0, max: 120 }),
  }),
  startMin: fc.integer({ min: 0, max: 40 }),
  durationMin: fc.integer({ min: 1, max: 20 }),
  removed: fc.boolean(),
});

describe('HostTimeline.remove', () => {
  it('leaves the timeline as if the removed slots had never been added', () => {
    fc.assert(
      fc.property(
        hostArb,
        fc.array(slotArb, { maxLength: 10 }),
        fc.array(slotArb, { minLength: 1, maxLength: 5 }),
        (host, slots, probes) => {
          const withRemoved = new HostTimeline(host);
          const without = new HostTimeline(host);
          const interval = (s: (typeof slots)[number]) =>
            [s.startMin * MIN, (s.startMin + s.durationMin) * MIN] as const;
          for (const s of slots) withRemoved.add(s.need, ...interval(s), true);
          for (const s of slots) if (s.removed) withRemoved.remove(s.need, ...interval(s), true);
          for (const s of slots) if (!s.removed) without.add(s.need, ...interval(s), true);
          for (const probe of probes) {
            const [start, end] = interval(probe);
            const durationMs = end - start;
            assert.deepEqual(
              withRemoved.earliestStart(probe.need, durationMs, start, start + 60 * MIN),
              without.earliestStart(probe.need, durationMs, start, start + 60 * MIN),
            );
            assert.deepEqual(
              withRemoved.conflictAt(probe.need, start, durationMs)?.blocker,
              without.conflictAt(probe.need, start, durationMs)?.blocker,
            );
            for (const kind of ['GUEST', 'HYPERVISOR'] as const)
              assert.equal(withRemoved.runEnd(kind, start), without.runEnd(kind, start));
            const { io, cpu, guests, hypervisors } = withRemoved.usageAt(start);
            const expected = without.usageAt(start);
            assert.deepEqual(
              { io, cpu, guests, hypervisors },
              { io: expected.io, cpu: expected.cpu, guests: expected.guests, hypervisors: expected.hypervisors },
            );
          }
        },
      ),
      { numRuns: propertyRuns(500) },
    );
  });
});

import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import {
  type AdaptiveBudgetOptions,
  type AdaptiveInput,
  deadlineFloor,
  startAdaptive,
  stepAdaptive,
} from '../../../../coordinator/domain/adaptive-budget';
import { ManualClock } from '../../../../common/util/clock';
import { propertyRuns } from '../../../helpers/property-runs';

const MiB = 1024 * 1024;
const OPTIONS: AdaptiveBudgetOptions = {
  max: 100 * MiB,
  min: 1 * MiB,
  step: 5 * MiB,
  cutFactor: 0.5,
  reactionMs: 20_000,
  raiseEveryMs: 10_000,
  deadlineGuardMs: 60_000,
};

const options = fc
  .record({
    max: fc.double({ min: 1, max: 1e9, noNaN: true }),
    minShare: fc.double({ min: 0.001, max: 1, noNaN: true }),
    stepShare: fc.double({ min: 0.001, max: 1, noNaN: true }),
    cutFactor: fc.double({ min: 0.1, max: 0.9, noNaN: true }),
    reactionMs: fc.integer({ min: 1_000, max: 120_000 }),
    raiseEveryMs: fc.integer({ min: 0, max: 120_000 }),
    deadlineGuardMs: fc.integer({ min: 0, max: 600_000 }),
  })
  .map((o): AdaptiveBudgetOptions => ({ ...o, min: o.max * o.minShare, step: o.max * o.stepShare }));

/** Reports at random intervals, each with a pressure, and what the backup used (or nothing). */
const reports = fc.array(
  fc.record({
    dt: fc.integer({ min: 100, max: 30_000 }),
    pressure: fc.constantFrom('over' as const, 'steady' as const, 'calm' as const),
    usedShare: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
  }),
  { minLength: 1, maxLength: 200 },
);

describe('adaptive budget', () => {
  it('cuts by the factor when pressure rises, and raises by the step once calm for the raise interval', () => {
    const clock = new ManualClock(0);
    const at = (pressure: AdaptiveInput['pressure'], used?: number): AdaptiveInput => ({
      now: clock.now(),
      pressure,
      windowEnd: 0,
      used,
    });
    let s = startAdaptive(OPTIONS, clock.now());
    assert.equal(s.budget, 100 * MiB);
    clock.advance(10_000);
    s = stepAdaptive(OPTIONS, s, at('over', 40 * MiB)); // cut from what it used: 40 → 20
    assert.equal(s.budget, 20 * MiB);
    clock.advance(10_000);
    s = stepAdaptive(OPTIONS, s, at('over'));
    assert.equal(s.budget, 20 * MiB, 'no second cut within the reaction time: PSI avg10 lags the cut');
    clock.advance(10_000);
    s = stepAdaptive(OPTIONS, s, at('over'));
    assert.equal(s.budget, 10 * MiB, 'cut again once the reaction time passed under pressure');
    clock.advance(10_000);
    s = stepAdaptive(OPTIONS, s, at('steady'));
    assert.equal(s.budget, 10 * MiB, 'held between the thresholds');
    s = stepAdaptive(OPTIONS, s, at('calm'));
    assert.equal(s.budget, 15 * MiB);
    clock.advance(5_000);
    s = stepAdaptive(OPTIONS, s, at('calm'));
    assert.equal(s.budget, 15 * MiB, 'raises are spaced');
    clock.advance(5_000);
    assert.equal(stepAdaptive(OPTIONS, s, at('calm')).budget, 20 * MiB);
  });

  it('never cuts below the rate that ends the work in its window, and gives the maximum when it cannot', () => {
    // 3,000 MiB left, 10 minutes to the window's end, a 1 minute guard: 3000 / 540 s = 5.6 MiB/s.
    const input: AdaptiveInput = { now: 0, pressure: 'over', windowEnd: 600_000, remaining: 3_000 * MiB };
    assert.equal(deadlineFloor(OPTIONS, input), (3_000 * MiB) / 540);
    const s = stepAdaptive(OPTIONS, { budget: 6 * MiB, changedAt: 0 }, input);
    assert.equal(s.budget, (3_000 * MiB) / 540);
    assert.equal(deadlineFloor(OPTIONS, { ...input, remaining: 1e6 * MiB }), OPTIONS.max);
    assert.equal(deadlineFloor(OPTIONS, { ...input, now: 590_000 }), OPTIONS.max, 'inside the guard');
    assert.equal(deadlineFloor(OPTIONS, { ...input, remaining: undefined }), OPTIONS.min);
  });

  it('keeps the budget within [deadline floor, max] after every report', () => {
    fc.assert(
      fc.property(options, reports, fc.integer({ min: 0, max: 4 * 3_600_000 }), (o, rs, window) => {
        const clock = new ManualClock(0);
        let s = startAdaptive(o, clock.now());
        let remaining = o.max * (window / 1_000) * 0.5;
        for (const r of rs) {
          clock.advance(r.dt);
          remaining = Math.max(0, remaining - (s.budget * r.dt) / 1_000);
          const input: AdaptiveInput = {
            now: clock.now(),
            pressure: r.pressure,
            windowEnd: window,
            remaining,
            used: r.usedShare === undefined ? undefined : s.budget * r.usedShare,
          };
          s = stepAdaptive(o, s, input);
          const floor = deadlineFloor(o, input);
          assert.ok(s.budget >= floor && s.budget <= o.max, `${s.budget} outside [${floor}, ${o.max}]`);
        }
      }),
      { numRuns: propertyRuns(500) },
    );
  });

  it('never keeps the budget up under pressure past its reaction time, unless at its floor', () => {
    fc.assert(
      fc.property(options, reports, (o, rs) => {
        const clock = new ManualClock(0);
        let s = startAdaptive(o, clock.now());
        let overSince: number | undefined;
        // The last report where the budget went down or sat at its floor: the controller had done what it may.
        let actedAt = -Infinity;
        for (const r of rs) {
          clock.advance(r.dt);
          const now = clock.now();
          const before = s.budget;
          s = stepAdaptive(o, s, { now, pressure: r.pressure, windowEnd: 0, used: undefined });
          if (s.budget < before || s.budget === o.min) actedAt = now;
          if (r.pressure !== 'over') {
            overSince = undefined;
            continue;
          }
          overSince ??= now;
          assert.ok(s.budget <= before, 'raised under pressure');
          const held = now - Math.max(actedAt, overSince);
          assert.ok(held < o.reactionMs, `kept ${s.budget} for ${held} ms under pressure (reaction ${o.reactionMs})`);
        }
      }),
      { numRuns: propertyRuns(500) },
    );
  });

  it('never starves a backup past its window when the window is feasible, under any pressure', () => {
    fc.assert(
      fc.property(
        options,
        reports,
        fc.integer({ min: 60_000, max: 8 * 3_600_000 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        (o, rs, span, load) => {
          const clock = new ManualClock(0);
          const windowEnd = span + o.deadlineGuardMs;
          // Work that the maximum budget ends `load` of the way into the window (its guard aside): feasible.
          let remaining = ((o.max * span) / 1_000) * load;
          // What floating-point sums leave over when the work takes the whole window at the maximum.
          const rounding = remaining * 1e-9;
          let s = startAdaptive(o, clock.now());
          let i = 0;
          // The backup uses its whole budget; reports come as generated, over and over, until it is done.
          while (remaining > rounding) {
            const r = rs[i++ % rs.length];
            const dt = Math.min(r.dt, windowEnd - clock.now());
            const seconds = remaining / s.budget;
            if (seconds * 1_000 <= dt) {
              clock.advance(seconds * 1_000);
              break;
            }
            assert.ok(dt > 0, `window ended with ${remaining} left at ${s.budget}/s`);
            clock.advance(dt);
            remaining -= (s.budget * dt) / 1_000;
            s = stepAdaptive(o, s, { now: clock.now(), pressure: r.pressure, windowEnd, remaining });
          }
          assert.ok(clock.now() <= windowEnd, `ended at ${clock.now()}, after its window's end ${windowEnd}`);
        },
      ),
      { numRuns: propertyRuns(500) },
    );
  });
});

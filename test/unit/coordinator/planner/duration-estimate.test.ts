import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { compileDurationEstimateOptions, estimateDurationMs } from '../../../../coordinator/planner/duration-estimate';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { propertyRuns } from '../../../helpers/property-runs';

const MIN = 60_000;

describe('estimateDurationMs', () => {
  it('trusts the declared duration until the job has run', () => {
    assert.equal(estimateDurationMs(30 * MIN, []), 30 * MIN);
  });

  it('takes an hour for a job that declares nothing and has never run', () => {
    assert.equal(estimateDurationMs(0, []), 60 * MIN);
    assert.equal(estimateDurationMs(0, [], compileDurationEstimateOptions({ unknownMs: 5 * MIN })), 5 * MIN);
  });

  it('moves from the declared duration toward the runs as they accumulate', () => {
    // Declared 10 min, runs of 20 min: 1 run of 5 needed → 1/5 of the way, 4 runs → 4/5.
    assert.equal(estimateDurationMs(10 * MIN, [20 * MIN]), 12 * MIN);
    assert.equal(estimateDurationMs(10 * MIN, [20 * MIN, 20 * MIN, 20 * MIN, 20 * MIN]), 18 * MIN);
    assert.equal(estimateDurationMs(10 * MIN, Array(5).fill(20 * MIN)), 20 * MIN);
  });

  it('uses the runs alone when nothing is declared', () => {
    assert.equal(estimateDurationMs(0, [7 * MIN]), 7 * MIN);
  });

  it('takes the 90th percentile of the last 20 runs: slow nights count, one outlier does not', () => {
    const runs = Array.from({ length: 20 }, (_, i) => (i + 1) * MIN); // 1..20 min
    assert.equal(estimateDurationMs(5 * MIN, runs), 18 * MIN);
    assert.equal(estimateDurationMs(5 * MIN, [...runs.slice(0, 19), 500 * MIN]), 18 * MIN);
    // Older runs drop out: 30 runs of 1 min then 20 of 2 min.
    assert.equal(estimateDurationMs(5 * MIN, [...Array(30).fill(MIN), ...Array(20).fill(2 * MIN)]), 2 * MIN);
  });

  it('rounds up to a whole millisecond, at least 1', () => {
    assert.equal(estimateDurationMs(0, [0]), 1);
    // Found by the property below (seed 886764449): a blend of equal figures must not round up past them.
    assert.equal(estimateDurationMs(14, [14]), 14);
    assert.equal(estimateDurationMs(10, [11], compileDurationEstimateOptions({ runsToTrust: 3 })), 11);
  });

  it('refuses negative or non-finite durations, and options out of range, naming every problem', () => {
    assert.throws(() => estimateDurationMs(-1, []), InvalidArgumentError);
    assert.throws(() => estimateDurationMs(10, [5, NaN]), InvalidArgumentError);
    assert.throws(
      () => compileDurationEstimateOptions({ percentile: 0, runsToTrust: 50 }),
      (e: unknown) =>
        e instanceof InvalidArgumentError && /percentile/.test(e.message) && /runsToTrust/.test(e.message),
    );
  });

  it('lies between the declared duration and the runs, and once trusted is one of the recent runs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.array(fc.integer({ min: 1, max: 10_000_000 }), { maxLength: 40 }),
        (declared, runs) => {
          const estimate = estimateDurationMs(declared, runs);
          const recent = runs.slice(-20);
          assert.ok(estimate >= Math.min(declared, ...recent) && estimate <= Math.max(declared, ...recent));
          if (recent.length >= 5) assert.ok(recent.includes(estimate));
        },
      ),
      { numRuns: propertyRuns(100) },
    );
  });
});

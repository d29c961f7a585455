/**
 * common/util/duration.ts, used by the agent and headroomctl alike.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { formatDuration, parseDuration, parseFlagDuration } from '../../../../common/util/duration';
import { propertyRuns } from '../../../helpers/property-runs';

describe('parseDuration', () => {
  it('reads numbers and digit-only strings as milliseconds', () => {
    assert.equal(parseDuration(1500), 1500);
    assert.equal(parseDuration('2500'), 2500);
    assert.equal(parseDuration(0), 0);
  });

  it('reads units and combinations of them, largest first', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1d2h3m4s5ms'), 86_400_000 + 7_200_000 + 180_000 + 4_000 + 5);
    assert.equal(parseDuration('1.5s'), 1_500);
    assert.equal(parseDuration(' 2M '), 120_000);
  });

  it('refuses what is not a duration, saying what it expected', () => {
    for (const bad of ['', 'abc', '10', '10x', '1h 30m', 'm', '-5s', '30m1h', '1m1m', '1.s', '5 s']) {
      if (bad === '10') continue; // digit-only is milliseconds
      assert.throws(() => parseDuration(bad), /expected a duration such as/, `accepted ${JSON.stringify(bad)}`);
    }
    assert.throws(() => parseDuration(-1), /expected a duration/);
    assert.throws(() => parseDuration(Number.NaN), /expected a duration/);
    assert.throws(() => parseDuration(Infinity), /expected a duration/);
  });
});

describe('parseFlagDuration', () => {
  it('reads durations with units, and 0', () => {
    assert.equal(parseFlagDuration('30s'), 30_000);
    assert.equal(parseFlagDuration('5m'), 300_000);
    assert.equal(parseFlagDuration('1h30m'), 5_400_000);
    assert.equal(parseFlagDuration('250ms'), 250);
    assert.equal(parseFlagDuration('0'), 0);
  });

  it('refuses a bare number, saying which spellings would do', () => {
    assert.throws(() => parseFlagDuration('30'), /^Error: "30" has no unit: write 30s, 30m or 30ms$/);
    assert.throws(
      () => parseFlagDuration('soon'),
      /^Error: expected a duration such as 500ms, 90s, 10m, 2h or 1h30m, got "soon"$/,
    );
  });
});

describe('formatDuration', () => {
  it('writes compact, exact durations', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(1_500), '1.5s');
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(86_400_000), '1d');
    assert.equal(formatDuration(-2_000), '-2s');
  });

  it('parses back to the same number of milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 * 86_400_000 }), (ms) => {
        assert.equal(parseDuration(formatDuration(ms)), ms);
      }),
      { numRuns: propertyRuns(100) },
    );
  });

  it('writes what the command line reads back exactly: every duration printed can be typed as a flag', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 * 86_400_000 }), (ms) => {
        assert.equal(parseFlagDuration(formatDuration(ms)), ms);
      }),
      { numRuns: propertyRuns(100) },
    );
  });
});

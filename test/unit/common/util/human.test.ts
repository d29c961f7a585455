import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { parseFlagDuration } from '../../../../common/util/duration';
import { withIsoTimes } from '../../../../common/util/json-times';
import { propertyRuns } from '../../../helpers/property-runs';
import {
  formatBytes,
  formatClock,
  formatClockRelative,
  formatCommand,
  formatDateTime,
  formatPercent,
  formatRate,
  formatRelative,
  formatSpan,
} from '../../../../common/util/human';

// Local times, so that the tests hold in every time zone.
const at = (h: number, m: number, s: number, day = 15) => new Date(2026, 0, day, h, m, s).getTime();

describe('human units', () => {
  it('writes bytes in binary units with three significant digits', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(12.3 * 1024 * 1024), '12.3 MiB');
    assert.equal(formatBytes(150 * 1024 * 1024), '150 MiB');
    assert.equal(formatBytes(4 * 1024 ** 3), '4.0 GiB');
    assert.equal(formatBytes(1024 * 1024 - 1), '1.0 MiB');
    assert.equal(formatBytes(-1), '-');
    assert.equal(formatBytes(Number.NaN), '-');
  });

  it('writes rates per second and percentages', () => {
    assert.equal(formatRate(12.3 * 1024 * 1024), '12.3 MiB/s');
    assert.equal(formatRate(0), '0 B/s');
    assert.equal(formatPercent(12.345), '12.3%');
    assert.equal(formatPercent(100), '100%');
    assert.equal(formatPercent(Number.NaN), '-');
  });

  it('rounds spans to their two largest units', () => {
    assert.equal(formatSpan(252_000), '4m12s');
    assert.equal(formatSpan(252_400), '4m12s');
    assert.equal(formatSpan(45_000), '45s');
    assert.equal(formatSpan(2 * 3_600_000 + 5 * 60_000 + 59_000), '2h5m');
    assert.equal(formatSpan(3 * 86_400_000 + 4 * 3_600_000 + 1_000), '3d4h');
    assert.equal(formatSpan(3_600_000 + 30_000), '1h');
    assert.equal(formatSpan(59_600), '1m');
    assert.equal(formatSpan(250), '250ms');
    assert.equal(formatSpan(-90_000), '1m30s');
  });

  it('writes ages and countdowns relative to now', () => {
    const now = at(12, 0, 0);
    assert.equal(formatRelative(now - 12_000, now), '12s ago');
    assert.equal(formatRelative(now + 252_000, now), 'in 4m12s');
    assert.equal(formatRelative(now + 400, now), 'now');
    assert.equal(formatRelative(0, now), '-');
  });

  it('writes times as local HH:MM:SS, with the date when it is another day', () => {
    const now = at(12, 0, 0);
    assert.equal(formatClock(at(9, 5, 7), now), '09:05:07');
    assert.equal(formatClock(at(23, 59, 59, 16), now), '2026-01-16 23:59:59');
    assert.equal(formatClock(0, now), '-');
    assert.equal(formatClockRelative(at(12, 3, 20), now), '12:03:20 (in 3m20s)');
    assert.equal(formatDateTime(at(9, 5, 7)), '2026-01-15 09:05:07', 'the same format, the date always');
    assert.equal(formatDateTime(0), '-');
  });

  it('writes spans that the command line reads back, within their rounding', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 * 86_400_000 }), (ms) => {
        const back = parseFlagDuration(formatSpan(ms));
        // Two units kept: what is dropped is less than one of the smaller unit, plus half a second of rounding.
        const largest = [86_400_000, 3_600_000, 60_000, 1_000].find((u) => ms >= u) ?? 1;
        const smaller = largest === 1_000 ? 1_000 : largest / (largest === 86_400_000 ? 24 : 60);
        assert.ok(Math.abs(back - ms) <= smaller + 500, `${ms} → ${formatSpan(ms)} → ${back}`);
      }),
      { numRuns: propertyRuns(200) },
    );
  });

  it('adds an ISO 8601 sibling to each set UnixMs field of --json output, keeping the number', () => {
    const t = Date.UTC(2026, 11, 6, 3, 4, 5, 6);
    assert.deepEqual(
      withIsoTimes({ events: [{ atUnixMs: t, seq: 1 }], slot: { startUnixMs: t, windowEndUnixMs: 0 }, n: null }),
      {
        events: [{ atUnixMs: t, at: '2026-12-06T03:04:05.006Z', seq: 1 }],
        slot: { startUnixMs: t, start: '2026-12-06T03:04:05.006Z', windowEndUnixMs: 0 },
        n: null,
      },
    );
  });

  it("drops the loader's markers of proto3 optional fields from --json output, and keeps other keys", () => {
    assert.deepEqual(
      withIsoTimes({
        vmPressure: {
          db: {
            throttleAboveCpuPressurePercent: 60,
            _throttleAboveCpuPressurePercent: 'throttleAboveCpuPressurePercent',
            _pauseAboveCpuPressurePercent: undefined,
          },
        },
        _note: 'kept',
      }),
      { vmPressure: { db: { throttleAboveCpuPressurePercent: 60 } }, _note: 'kept' },
    );
  });

  it('quotes a command line for messages as a shell would need it', () => {
    assert.equal(formatCommand(['sh', '-c', 'exit 3']), "sh -c 'exit 3'");
    assert.equal(
      formatCommand(['vzdump', '101', '--mode=snapshot', '/var/lib/vz']),
      'vzdump 101 --mode=snapshot /var/lib/vz',
    );
    assert.equal(formatCommand(['echo', "it's"]), `echo 'it'\\''s'`);
    assert.equal(formatCommand(['']), "''");
  });
});

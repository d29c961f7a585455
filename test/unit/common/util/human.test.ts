import { strict as assert } from 'node:assert';
import {
  formatBytes,
  formatClock,
  formatClockRelative,
  formatCommand,
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

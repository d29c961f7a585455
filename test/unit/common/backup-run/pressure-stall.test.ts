import { strict as assert } from 'node:assert';
import { parsePressureStall } from '../../../../common/backup-run/pressure-stall';

// Captured on the development machine (Linux 6.18) with `cat /proc/pressure/{cpu,io,memory}`.
const CPU =
  'some avg10=2.41 avg60=4.26 avg300=10.04 total=6411120514\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n';
const IO =
  'some avg10=0.60 avg60=1.32 avg300=1.24 total=161525555\nfull avg10=0.59 avg60=1.06 avg300=0.93 total=56801608\n';
// Linux before 5.13 writes no full line for cpu (Documentation/accounting/psi.rst).
const OLD_CPU = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n';

describe('pressure stall parser', () => {
  it('reads some and full lines as the kernel writes them', () => {
    assert.deepEqual(parsePressureStall(IO), {
      some: { avg10: 0.6, avg60: 1.32, avg300: 1.24, totalUs: 161525555 },
      full: { avg10: 0.59, avg60: 1.06, avg300: 0.93, totalUs: 56801608 },
    });
    assert.equal(parsePressureStall(CPU).some.avg300, 10.04);
  });

  it('reads a cpu file without a full line (before Linux 5.13)', () => {
    assert.deepEqual(parsePressureStall(OLD_CPU), { some: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0 } });
  });

  it('refuses what the kernel does not write, naming the line', () => {
    assert.throws(() => parsePressureStall(''), /no "some" line/);
    assert.throws(() => parsePressureStall('full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n'), /no "some" line/);
    assert.throws(
      () => parsePressureStall(IO.replace('avg60=1.32', 'avg60=x')),
      /not a PSI line: "some avg10=0.60 avg60=x/,
    );
    assert.throws(() => parsePressureStall(`${OLD_CPU}${OLD_CPU}`), /"some" appears twice/);
    assert.throws(() => parsePressureStall(OLD_CPU.replace('avg10=0.00', 'avg10=100.01')), /above 100%/);
    assert.throws(() => parsePressureStall('some avg10=1.00 avg60=1.00 avg300=1.00 total=5 extra\n'), /not a PSI line/);
  });
});

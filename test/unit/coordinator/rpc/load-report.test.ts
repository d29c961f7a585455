import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { load } from '../../../../coordinator/rpc/validate';
import type { LoadReport__Output } from '../../../../proto/generated/headroom/v1';

const REPORT: LoadReport__Output = {
  sampledUnixMs: 1,
  cpuPercent: 10,
  memUsedBytes: 1,
  memTotalBytes: 2,
  diskReadBytesPerSec: 0,
  diskWriteBytesPerSec: 0,
  netRxBytesPerSec: 0,
  netTxBytesPerSec: 0,
  load1: 0,
  load5: 0,
  load15: 0,
  backupCpuPercent: 0,
  backupIoBytesPerSec: 0,
  cpuPressure: { someAvg10: 2.41, someAvg60: 4.26, fullAvg10: 0, fullAvg60: 0 },
  ioPressure: { someAvg10: 100, someAvg60: 1.32, fullAvg10: 0.59, fullAvg60: 1.06 },
  memoryPressure: null,
  pressureMissing: '',
  diskAwaitMs: 3.5,
};

function refusal(report: LoadReport__Output): InvalidArgumentError {
  try {
    load(report);
  } catch (e) {
    assert.ok(e instanceof InvalidArgumentError);
    return e;
  }
  assert.fail('the report was accepted');
}

describe('load report validation', () => {
  it('accepts PSI shares from 0 to 100 %, a file left out, and an await', () => {
    assert.equal(load(REPORT), REPORT);
  });

  it('refuses a PSI figure outside 0..100 or not a number, an await below 0, and an overlong reason, naming the field', () => {
    const io = (v: number) => ({ ...REPORT, ioPressure: { ...REPORT.ioPressure!, fullAvg60: v } });
    assert.equal(refusal(io(100.5)).field, 'load.io_pressure.full_avg60');
    assert.equal(refusal(io(NaN)).field, 'load.io_pressure.full_avg60');
    assert.equal(refusal({ ...REPORT, diskAwaitMs: -1 }).field, 'load.disk_await_ms');
    assert.equal(refusal({ ...REPORT, pressureMissing: 'x'.repeat(257) }).field, 'load.pressure_missing');
  });
});

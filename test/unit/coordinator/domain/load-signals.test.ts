import { WAIT_THRESHOLDS_OFF } from '../../../helpers/wait-signals';
import { strict as assert } from 'node:assert';
import {
  loadSignals,
  type MachineLoad,
  signalSource,
  SIGNAL_SOURCE_LABEL,
} from '../../../../coordinator/domain/load-signals';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';

const psi = (someAvg10: number, fullAvg10 = 0) => ({ someAvg10, fullAvg10 });
const base: MachineLoad = {
  cpuPercent: 70,
  diskReadBytesPerSec: 0,
  diskWriteBytesPerSec: 0,
  backupCpuPercent: 20,
  backupIoBytesPerSec: 0,
};
const withPsi: MachineLoad = {
  ...base,
  cpuPressure: psi(3),
  ioPressure: psi(12, 4),
  memoryPressure: psi(1, 0.5),
  diskAwaitMs: 8,
};

describe('load signals', () => {
  it('judges by PSI alone where the report carries all three files: io some, cpu some, memory full', () => {
    const { source, signals } = loadSignals(DEFAULT_POLICY, withPsi);
    assert.equal(source, 'pressure');
    assert.deepEqual(
      signals.map((s) => [s.name, s.value, s.throttleAbove, s.pauseAbove, s.resumeBelow]),
      [
        ['io pressure', 12, 10, 25, 5],
        ['cpu pressure', 3, 20, 40, 10],
        ['memory pressure', 0.5, 5, 15, 2],
      ],
    );
    assert.equal(SIGNAL_SOURCE_LABEL[source], 'pressure (PSI)');
  });

  it('falls back to the disk await with foreground CPU and I/O where PSI is missing (or a file of it)', () => {
    const { source, signals } = loadSignals(DEFAULT_POLICY, { ...withPsi, memoryPressure: null });
    assert.equal(source, 'latency');
    assert.deepEqual(
      signals.map((s) => [s.name, s.value]),
      [
        ['disk await', 8],
        ['foreground cpu', 50],
        ['foreground io', 0],
      ],
    );
  });

  it('falls back to foreground CPU and I/O where neither is measured', () => {
    const { source, signals } = loadSignals(DEFAULT_POLICY, base);
    assert.equal(source, 'fallback');
    assert.deepEqual(
      signals.map((s) => s.name),
      ['foreground cpu', 'foreground io'],
    );
    assert.equal(SIGNAL_SOURCE_LABEL[source], 'cpu% (fallback)');
  });

  it('passes over a signal whose thresholds the policy turns off', () => {
    assert.equal(
      signalSource({ ...DEFAULT_POLICY, ...WAIT_THRESHOLDS_OFF, throttleAboveDiskAwaitMs: 20 }, withPsi),
      'latency',
    );
    const noAwait = { ...DEFAULT_POLICY, ...WAIT_THRESHOLDS_OFF };
    assert.equal(signalSource(noAwait, withPsi), 'fallback');
    // One threshold on is enough.
    assert.equal(
      signalSource({ ...DEFAULT_POLICY, ...WAIT_THRESHOLDS_OFF, pauseAboveMemoryPressurePercent: 30 }, withPsi),
      'pressure',
    );
  });
});

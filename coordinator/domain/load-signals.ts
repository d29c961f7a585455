/**
 * The signals a machine's load is judged by, and which of them are in force. What matters is whether the
 * machine's own work waits, so the best signal that the report carries and the policy turns on (some
 * threshold above 0) wins:
 * - **pressure (PSI)**: the share of the last 10 s in which tasks stalled on CPU (`some`), on I/O (`some`)
 *   and on memory (`full`: every task stalled, reclaim or swap-in), where the kernel reports PSI;
 * - **latency (diskstats)**: where it does not, the slowest disk's await (ms per I/O), with CPU percent;
 * - **cpu% (fallback)**: CPU percent and disk bytes/s, where the report carries neither.
 * CPU percent and byte rates are the foreground's (the backups' own share taken out); PSI and await cannot be
 * split by process, so they include what the backup itself waits for.
 * Each signal has throttle, pause and resume thresholds (0 = off); the budget controller and the start gate
 * read them from here. Pure.
 */
import type { BudgetPolicy, PressurePolicy } from './policy';

/** One PSI file's figures as a load report carries them (percent of wall time). */
export interface PressureView {
  someAvg10: number;
  fullAvg10: number;
}

/** A machine's load in LoadReport's units (CPU in percent of the whole machine): a VM's, as its agent reports it, or the host's. */
export interface MachineLoad {
  cpuPercent: number;
  diskReadBytesPerSec: number;
  diskWriteBytesPerSec: number;
  /** What Headroom's backups used of cpuPercent. */
  backupCpuPercent: number;
  /** What Headroom's backups used of the disk reads and writes. */
  backupIoBytesPerSec: number;
  /** PSI, absent (or null, as the wire decodes it) where the kernel has none. */
  cpuPressure?: PressureView | null;
  ioPressure?: PressureView | null;
  memoryPressure?: PressureView | null;
  /** The slowest disk's await, ms per I/O; absent where there is no disk to measure. */
  diskAwaitMs?: number;
}

export type SignalSource = 'pressure' | 'latency' | 'fallback';

/** How people are told which signal is in force. */
export const SIGNAL_SOURCE_LABEL: Record<SignalSource, string> = {
  pressure: 'pressure (PSI)',
  latency: 'latency (diskstats)',
  fallback: 'cpu% (fallback)',
};

export interface Signal {
  name: string;
  value: number;
  throttleAbove: number;
  pauseAbove: number;
  resumeBelow: number;
  format(v: number): string;
}

export type SignalPolicy = Pick<
  BudgetPolicy,
  | 'throttleAboveCpuPercent'
  | 'pauseAboveCpuPercent'
  | 'resumeBelowCpuPercent'
  | 'throttleAboveIoBytesPerSec'
  | 'pauseAboveIoBytesPerSec'
  | 'resumeBelowIoBytesPerSec'
> &
  PressurePolicy;

const percent = (v: number) => `${Math.round(v)}%`;
const stall = (v: number) => `${v.toFixed(1)}%`;
const rate = (v: number) => `${(v / (1024 * 1024)).toFixed(1)} MiB/s`;
const ms = (v: number) => `${v.toFixed(1)} ms`;

const on = (...thresholds: number[]) => thresholds.some((t) => t > 0);

/**
 * The signal in force: PSI where all three files were read and a pressure threshold is on, else the disk
 * await where measured and one of its thresholds is on, else CPU percent and byte rates.
 */
export function signalSource(policy: PressurePolicy, load: WaitFigures): SignalSource {
  const p = policy;
  const pressureOn = on(
    p.throttleAboveIoPressurePercent,
    p.pauseAboveIoPressurePercent,
    p.throttleAboveCpuPressurePercent,
    p.pauseAboveCpuPressurePercent,
    p.throttleAboveMemoryPressurePercent,
    p.pauseAboveMemoryPressurePercent,
  );
  if (pressureOn && load.cpuPressure && load.ioPressure && load.memoryPressure) return 'pressure';
  const awaitOn = on(p.throttleAboveDiskAwaitMs, p.pauseAboveDiskAwaitMs);
  return awaitOn && load.diskAwaitMs !== undefined && load.diskAwaitMs !== null ? 'latency' : 'fallback';
}

/** A machine's own work: its load minus what Headroom's backups used. */
export function foreground(load: MachineLoad): { cpuPercent: number; ioBytesPerSec: number } {
  return {
    cpuPercent: Math.max(0, load.cpuPercent - load.backupCpuPercent),
    ioBytesPerSec: Math.max(0, load.diskReadBytesPerSec + load.diskWriteBytesPerSec - load.backupIoBytesPerSec),
  };
}

/** What a load report says the machine's work waits for. */
export type WaitFigures = Pick<MachineLoad, 'cpuPressure' | 'ioPressure' | 'memoryPressure' | 'diskAwaitMs'>;

/** The signal in force, and its wait signals (none for the fallback), with the policy's thresholds. */
export function waitSignals(policy: PressurePolicy, w: WaitFigures): { source: SignalSource; signals: Signal[] } {
  const source = signalSource(policy, w);
  if (source === 'fallback') return { source, signals: [] };
  if (source === 'latency') {
    const wait: Signal = {
      name: 'disk await',
      value: w.diskAwaitMs!,
      throttleAbove: policy.throttleAboveDiskAwaitMs,
      pauseAbove: policy.pauseAboveDiskAwaitMs,
      resumeBelow: policy.resumeBelowDiskAwaitMs,
      format: ms,
    };
    return { source, signals: [wait] };
  }
  const stalls = (name: string, value: number, throttle: number, pause: number, resume: number): Signal => ({
    name,
    value,
    throttleAbove: throttle,
    pauseAbove: pause,
    resumeBelow: resume,
    format: stall,
  });
  const p = policy;
  return {
    source,
    signals: [
      stalls(
        'io pressure',
        w.ioPressure!.someAvg10,
        p.throttleAboveIoPressurePercent,
        p.pauseAboveIoPressurePercent,
        p.resumeBelowIoPressurePercent,
      ),
      stalls(
        'cpu pressure',
        w.cpuPressure!.someAvg10,
        p.throttleAboveCpuPressurePercent,
        p.pauseAboveCpuPressurePercent,
        p.resumeBelowCpuPressurePercent,
      ),
      stalls(
        'memory pressure',
        w.memoryPressure!.fullAvg10,
        p.throttleAboveMemoryPressurePercent,
        p.pauseAboveMemoryPressurePercent,
        p.resumeBelowMemoryPressurePercent,
      ),
    ],
  };
}

/** The signals in force for this load, with the policy's thresholds: PSI alone, or the await and CPU and I/O. */
export function loadSignals(policy: SignalPolicy, load: MachineLoad): { source: SignalSource; signals: Signal[] } {
  const waits = waitSignals(policy, load);
  if (waits.source === 'pressure') return waits;
  const own = foreground(load);
  const cpu: Signal = {
    name: 'foreground cpu',
    value: own.cpuPercent,
    throttleAbove: policy.throttleAboveCpuPercent,
    pauseAbove: policy.pauseAboveCpuPercent,
    resumeBelow: policy.resumeBelowCpuPercent,
    format: percent,
  };
  const io: Signal = {
    name: 'foreground io',
    value: own.ioBytesPerSec,
    throttleAbove: policy.throttleAboveIoBytesPerSec,
    pauseAbove: policy.pauseAboveIoBytesPerSec,
    resumeBelow: policy.resumeBelowIoBytesPerSec,
    format: rate,
  };
  return { source: waits.source, signals: [...waits.signals, cpu, io] };
}

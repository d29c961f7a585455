/**
 * The wait signals' thresholds off (PSI, disk await: coordinator/domain/load-signals.ts), as policy fields:
 * CPU percent and byte rates then decide, as before those signals existed.
 */
export const WAIT_THRESHOLDS_OFF = {
  throttleAboveIoPressurePercent: 0,
  pauseAboveIoPressurePercent: 0,
  throttleAboveCpuPressurePercent: 0,
  pauseAboveCpuPressurePercent: 0,
  throttleAboveMemoryPressurePercent: 0,
  pauseAboveMemoryPressurePercent: 0,
  throttleAboveDiskAwaitMs: 0,
  pauseAboveDiskAwaitMs: 0,
} as const;

/**
 * The memory pressure thresholds at their defaults, as policy fields, for a test that turns one wait signal
 * on against its agents' reports: memory `full` stays at 0 on a shared test machine, unlike cpu `some`, so
 * the host's own sample holds nothing back under them. And the same thresholds off again.
 */
export const MEMORY_PRESSURE_ON = {
  throttleAboveMemoryPressurePercent: 5,
  pauseAboveMemoryPressurePercent: 15,
  resumeBelowMemoryPressurePercent: 2,
} as const;
export const MEMORY_PRESSURE_OFF = {
  throttleAboveMemoryPressurePercent: 0,
  pauseAboveMemoryPressurePercent: 0,
  resumeBelowMemoryPressurePercent: 0,
} as const;

/** A load report's PSI for a machine whose work stalls on memory alone (`full` avg10, in percent). */
export function memoryStalls(fullAvg10: number) {
  return { cpuPressure: { someAvg10: 0 }, ioPressure: { someAvg10: 0 }, memoryPressure: { fullAvg10 } };
}

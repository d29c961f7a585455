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

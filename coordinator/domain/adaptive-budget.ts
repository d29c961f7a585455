/**
 * The adaptive budget: one limit of a running backup (its I/O bytes/s, or its CPU share), moved by AIMD as
 * TCP moves its congestion window: raised by a fixed step while the machine's work does not wait, cut by a
 * factor as soon as it does. It finds the most the workload tolerates instead of a fixed guess that is
 * either too low (the backup misses its window) or too high (the workload suffers).
 *
 * Two bounds hold whatever the load says:
 * - the **deadline floor**: the budget never drops below the rate that still ends the backup's remaining work
 *   in its window (with a guard margin), when that rate is within the maximum: a window that can be met is met;
 *   when it cannot, the floor is the maximum.
 * - the **reaction time**: while the signal stays over its threshold, the budget is cut at the first report
 *   that shows it and again at least every `reactionMs` after, until it reaches its floor.
 * Raises are spaced by `raiseEveryMs`, and none comes while the signal sits between the resume and the
 * throttle threshold (hysteresis). Pure: the caller passes the time, the signal and the remaining work.
 */

export interface AdaptiveBudgetOptions {
  /** The highest budget (the backup's base budget); Infinity when that sets no limit. */
  max: number;
  /** The lowest budget, deadline aside; above 0 (0 would mean no limit). */
  min: number;
  /** Added at each raise. */
  step: number;
  /** Each cut multiplies by this, in (0, 1). */
  cutFactor: number;
  /** Under sustained pressure, at most this long between two cuts. */
  reactionMs: number;
  /** At least this long between two raises, and between a cut and the next raise. */
  raiseEveryMs: number;
  /** The deadline floor aims to end this long before the window's end. */
  deadlineGuardMs: number;
}

/** What a report says of the machine and of the backup. */
export interface AdaptiveInput {
  now: number;
  /** 'over': at or above the throttle threshold; 'calm': under the resume threshold; 'steady': between. */
  pressure: 'over' | 'steady' | 'calm';
  /** The backup's remaining work in budget units × seconds (bytes for an I/O budget); undefined: not known. */
  remaining?: number;
  /** When its window ends; 0: no window. */
  windowEnd: number;
  /** What the backup used lately, in budget units (a cut starts from it when it is below the budget). */
  used?: number;
}

export interface AdaptiveState {
  budget: number;
  /** When the budget was last cut; undefined before the first cut. */
  cutAt?: number;
  /** When it was last raised or cut. */
  changedAt: number;
  /** Since when every report was over the threshold; undefined when the last was not. */
  overSince?: number;
}

/** The deadline floor: the rate that ends `remaining` within the window, within [min, max]. */
export function deadlineFloor(o: AdaptiveBudgetOptions, input: AdaptiveInput): number {
  if (input.remaining === undefined || input.remaining <= 0 || input.windowEnd <= 0) return o.min;
  const seconds = (input.windowEnd - o.deadlineGuardMs - input.now) / 1_000;
  if (seconds <= 0) return o.max;
  return Math.min(o.max, Math.max(o.min, input.remaining / seconds));
}

/** A backup's first state: at its maximum, as a fixed budget would start it. */
export function startAdaptive(o: AdaptiveBudgetOptions, now: number): AdaptiveState {
  return { budget: o.max, changedAt: now };
}

/** The budget after one report. */
export function stepAdaptive(o: AdaptiveBudgetOptions, state: AdaptiveState, input: AdaptiveInput): AdaptiveState {
  const { now } = input;
  const floor = deadlineFloor(o, input);
  let { budget, cutAt, changedAt } = state;
  const overSince = input.pressure === 'over' ? (state.overSince ?? now) : undefined;
  if (input.pressure === 'over') {
    // Cut at the first report of a rise, then again each reaction time while it lasts.
    const due = state.overSince === undefined || cutAt === undefined || now - cutAt >= o.reactionMs;
    if (due) {
      // A budget the backup does not use up (or no limit at all) is cut from what it used.
      const from = input.used !== undefined && input.used > 0 ? Math.min(budget, input.used) : budget;
      budget = Math.min(budget, Number.isFinite(from) ? from * o.cutFactor : o.min);
      cutAt = now;
      changedAt = now;
    }
  } else if (input.pressure === 'calm' && budget < o.max && now - changedAt >= o.raiseEveryMs) {
    budget += o.step;
    changedAt = now;
  }
  // The floor moves with time and work: the budget follows it up, never below.
  return { budget: Math.min(o.max, Math.max(floor, o.min, budget)), cutAt, changedAt, overSince };
}

/**
 * The adaptive budget applied to a running backup (policy `budgetMode: adaptive`): each of its limits (I/O
 * bytes/s, CPU share) follows its own AIMD controller (adaptive-budget.ts) between the policy's throttled
 * budget and the backup's base budget, driven by the signals in force (load-signals.ts): cut while one is at
 * or above its throttle threshold, raised while all are under their resume thresholds. The deadline floor
 * takes the backup's expected remaining work at its base budget (the slot's expected end) against its
 * window's end. Pauses stay the budget controller's. Pure.
 */
import {
  type AdaptiveBudgetOptions,
  type AdaptiveInput,
  type AdaptiveState,
  startAdaptive,
  stepAdaptive,
} from './adaptive-budget';
import type { Budget, Lease } from './lease';
import type { MachineLoad, Signal } from './load-signals';
import type { HostPolicy } from './policy';

/** Each limit's controller state; a limit that is not adapted (no throttled budget for it) has none. */
export interface AdaptiveLimits {
  io?: AdaptiveState;
  cpu?: AdaptiveState;
}

/** The multiplicative cut: halving, as TCP Reno does. */
const CUT_FACTOR = 0.5;
/** Raises climb from the throttled budget to the base one in this many steps. */
const RAISE_STEPS = 10;
/**
 * A base budget of no limit is adapted up to this many times the throttled budget, where it is given no
 * limit again: an AIMD needs a top, and a backup calm that long needs no limit.
 */
const UNLIMITED_TOP = 10;

/** The controller of one limit, or none when the policy gives no throttled budget for it (0: keep the base). */
export function limitOptions(
  policy: Required<HostPolicy>,
  base: number,
  reduced: number,
): AdaptiveBudgetOptions | undefined {
  if (reduced <= 0) return undefined;
  const max = base > 0 ? base : reduced * UNLIMITED_TOP;
  const min = Math.min(reduced, max);
  return {
    max,
    min,
    step: Math.max((max - min) / RAISE_STEPS, min / 2),
    cutFactor: CUT_FACTOR,
    // PSI's avg10 takes seconds to show a cut: two reports before cutting again.
    reactionMs: 2 * policy.reportIntervalMs,
    raiseEveryMs: policy.budgetDwellMs,
    deadlineGuardMs: policy.pauseWindowGuardMs,
  };
}

const isOn = (s: Signal) => s.throttleAbove > 0 || s.pauseAbove > 0;

/** The first signal at or above its throttle threshold (its pause threshold when throttling is off). */
export function overSignal(signals: readonly Signal[]): Signal | undefined {
  return signals.find((s) => isOn(s) && s.value >= (s.throttleAbove || s.pauseAbove));
}

/** 'over' when a signal is at or above its throttle threshold, 'calm' when all are under their resume ones. */
export function pressureOf(signals: readonly Signal[]): AdaptiveInput['pressure'] {
  if (overSignal(signals)) return 'over';
  return signals.filter(isOn).every((s) => s.value < s.resumeBelow) ? 'calm' : 'steady';
}

/** Why an adapted budget changed without a change of level, for the logs. */
export function adaptiveReason(machine: string, signals: readonly Signal[]): string {
  const over = overSignal(signals);
  if (over)
    return `adaptive budget cut: ${machine} busy: ${over.name} ${over.format(over.value)} >= ${over.format(over.throttleAbove || over.pauseAbove)}`;
  const values = signals
    .filter(isOn)
    .map((s) => `${s.name} ${s.format(s.value)}`)
    .join(', ');
  return pressureOf(signals) === 'calm'
    ? `adaptive budget raised: ${machine} calm${values ? `: ${values}` : ''}`
    : "adaptive budget: held up by its window's deadline floor";
}

/** A limit as an instruction carries it: whole units; the base's no limit (0) back at the top. */
const wireLimit = (base: number, o: AdaptiveBudgetOptions, v: number) =>
  base === 0 && v >= o.max ? 0 : Math.max(1, Math.round(v));

/** The adapted budget after one report, with the controllers' new states. */
export function adaptBudget(
  policy: Required<HostPolicy>,
  lease: Pick<Lease, 'slot'>,
  base: Budget,
  load: MachineLoad,
  signals: readonly Signal[],
  limits: AdaptiveLimits,
  now: number,
): { budget: Budget; limits: AdaptiveLimits } {
  const pressure = pressureOf(signals);
  const { windowEnd, expectedEnd } = lease.slot;
  /** One limit's next state and its value on the wire; the base where the policy does not adapt it. */
  const adapt = (baseLimit: number, reduced: number, state: AdaptiveState | undefined, used?: number) => {
    const o = limitOptions(policy, baseLimit, reduced);
    if (!o) return { value: baseLimit, state: undefined };
    const remaining = expectedEnd > now ? (o.max * (expectedEnd - now)) / 1_000 : undefined;
    const next = stepAdaptive(o, state ?? startAdaptive(o, now), { now, pressure, windowEnd, remaining, used });
    return { value: wireLimit(baseLimit, o, next.budget), state: next };
  };
  const io = adapt(base.ioBytesPerSec, policy.throttledIoBytesPerSec, limits.io, load.backupIoBytesPerSec);
  const cpu = adapt(base.cpuPercent, policy.throttledCpuPercent, limits.cpu);
  return {
    budget: { ioBytesPerSec: io.value, cpuPercent: cpu.value },
    limits: { io: io.state, cpu: cpu.state },
  };
}

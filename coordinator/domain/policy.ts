/**
 * Per-host policy: caps, lease TTL, overrun and report interval, the budget controller's thresholds and
 * budgets (budget-controller.ts), and how grants follow the plan and the load (start-gate.ts), with
 * defaults and validation.
 */
import { InvalidArgumentError } from './errors';
import { isValidName } from '../../common/domain/names';

export interface HostPolicy extends Partial<BudgetPolicy>, Partial<PressurePolicy>, Partial<StartPolicy> {
  /**
   * VMs' own pressure thresholds, by VM: each field a VM gives replaces the host's for that VM's load (a VM
   * that runs near capacity stalls on its own work, backup or not). Default none. vmPressurePolicy applies them.
   */
  vmPressure?: Record<string, VmPressure>;
  /** Concurrent GUEST tokens on the host. Default 4. */
  maxGuestTokens: number;
  /** Concurrent HYPERVISOR tokens on the host. Default 1, like vzdump's node-wide lock. */
  maxHypervisorTokens: number;
  /** Default lease TTL in ms. Default 30 s: a dead holder frees the host within half a minute. */
  leaseTtlMs: number;
  /** Keep a token past its window's end instead of revoking it. Default false. */
  allowOverrun: boolean;
  /** How often agents report load, in ms. Default 10 s. */
  reportIntervalMs: number;
}

/**
 * What a running guest backup may spend, from its VM's foreground load (its total minus Headroom's own
 * backups): budget-controller.ts. A threshold of 0 is off. CPU thresholds are in percent of the whole VM
 * (all cores, 0..100), I/O thresholds in bytes/s of the foreground's disk reads plus writes.
 *
 * Optional in HostPolicy: a policy stored before these fields existed, or built by a caller that does not
 * care about budgets, has none of them, and each then takes its default (completePolicy).
 */
export interface BudgetPolicy {
  /** Throttle a backup when the VM's foreground CPU reaches this. Default 60 %. */
  throttleAboveCpuPercent: number;
  /** Pause a backup when the VM's foreground CPU reaches this. Default 85 %. */
  pauseAboveCpuPercent: number;
  /** Give a throttled backup its full budget back once the foreground CPU is below this. Default 50 %. */
  resumeBelowCpuPercent: number;
  /** Throttle when the VM's foreground disk I/O reaches this. Default 0 (off): what is busy depends on the storage. */
  throttleAboveIoBytesPerSec: number;
  /** Pause when the VM's foreground disk I/O reaches this. Default 0 (off). */
  pauseAboveIoBytesPerSec: number;
  /** Full budget again once the foreground disk I/O is below this. Default 0 (needed once an I/O threshold is on). */
  resumeBelowIoBytesPerSec: number;
  /** CPU budget of a backup whose token carries none, in percent of one core. Default 0: no limit. */
  budgetCpuPercent: number;
  /** I/O budget of a backup whose token carries none, in bytes/s. Default 0: no limit. */
  budgetIoBytesPerSec: number;
  /** CPU budget of a throttled (or paused) backup, in percent of one core; 0 keeps the full one. Default 25 %. */
  throttledCpuPercent: number;
  /** I/O budget of a throttled (or paused) backup, in bytes/s; 0 keeps the full one. Default 10 MiB/s. */
  throttledIoBytesPerSec: number;
  /** Minimum time between a change and the next loosening (raise or resume), in ms. Default 30 s. */
  budgetDwellMs: number;
  /** A backup is paused for at most this long in all; then it runs throttled. 0: never pause. Default 10 min. */
  maxPauseMs: number;
  /**
   * A backup is not paused (only throttled) when its expected remaining work plus this margin would no
   * longer fit before its window's end. Default 5 min.
   */
  pauseWindowGuardMs: number;
  /**
   * How a running backup's budget moves below the pause thresholds: `fixed`, its base budget or the
   * throttled one (the thresholds decide); `adaptive`, each limit by AIMD between the throttled and the base
   * budget, floored by what still ends the backup in its window (adaptive-control.ts). Default fixed.
   */
  budgetMode: BudgetMode;
}

export const BUDGET_MODES = ['fixed', 'adaptive'] as const;
export type BudgetMode = (typeof BUDGET_MODES)[number];

/**
 * Thresholds on what the machine's work waits for (load-signals.ts), in force where its load report carries
 * the figure and one of the signal's thresholds is on; elsewhere the CPU and I/O thresholds of BudgetPolicy
 * decide. PSI thresholds are in percent of wall time stalled over the last 10 s (`avg10`); 0 is off. A
 * backup also does not start while a signal in force is at or above its throttle threshold. Optional in
 * HostPolicy for the same reason as BudgetPolicy.
 */
export interface PressurePolicy {
  /** Throttle when tasks waited on I/O this share of the time (io `some`). Default 10 %. */
  throttleAboveIoPressurePercent: number;
  /** Pause from this I/O pressure on. Default 25 %. */
  pauseAboveIoPressurePercent: number;
  /** Full budget again below this I/O pressure. Default 5 %. */
  resumeBelowIoPressurePercent: number;
  /** Throttle when runnable tasks waited for a CPU this share of the time (cpu `some`). Default 20 %. */
  throttleAboveCpuPressurePercent: number;
  /** Pause from this CPU pressure on. Default 40 %. */
  pauseAboveCpuPressurePercent: number;
  /** Full budget again below this CPU pressure. Default 10 %. */
  resumeBelowCpuPressurePercent: number;
  /** Throttle when all tasks stalled on memory (reclaim, swap-in) this share of the time (memory `full`). Default 5 %. */
  throttleAboveMemoryPressurePercent: number;
  /** Pause from this memory pressure on. Default 15 %. */
  pauseAboveMemoryPressurePercent: number;
  /** Full budget again below this memory pressure. Default 2 %. */
  resumeBelowMemoryPressurePercent: number;
  /** Where PSI is missing: throttle when the slowest disk's await (ms per I/O) reaches this. Default 20 ms. */
  throttleAboveDiskAwaitMs: number;
  /** Pause from this await on. Default 50 ms. */
  pauseAboveDiskAwaitMs: number;
  /** Full budget again below this await. Default 10 ms. */
  resumeBelowDiskAwaitMs: number;
}

/**
 * When a waiting request may start (start-gate.ts), and what the planner may put together. Optional in
 * HostPolicy for the same reason as BudgetPolicy.
 */
export interface StartPolicy {
  /** A request for a planned run waits for its slot in the host's plan. Default true. */
  followPlan: boolean;
  /** Two planned starts are at least this far apart, so a window's opening is not a storm of starts. Default 60 s. */
  minStartGapMs: number;
  /** What all the host's backups together may spend, in percent of one core. Default 0: no limit. */
  hostBudgetCpuPercent: number;
  /** What all the host's backups together may spend, in bytes/s. Default 0: no limit. */
  hostBudgetIoBytesPerSec: number;
  /** No backup starts on a VM whose foreground CPU is at or above this (percent of the VM). Default 60 %; 0: off. */
  startBelowCpuPercent: number;
  /** No backup starts on a VM whose foreground disk I/O is at or above this. Default 0: off. */
  startBelowIoBytesPerSec: number;
  /** No backup starts while the host's own CPU is at or above this (percent of the host). Default 90 %; 0: off. */
  hostStartBelowCpuPercent: number;
  /** No backup starts while the host's disk I/O is at or above this. Default 0: off. */
  hostStartBelowIoBytesPerSec: number;
  /** The CPU budget a HYPERVISOR token carries, in percent of one core. Default 0: no limit. */
  hypervisorBudgetCpuPercent: number;
  /** The I/O budget a HYPERVISOR token carries, in bytes/s. Default 0: no limit. */
  hypervisorBudgetIoBytesPerSec: number;
  /** VMs' own start thresholds, in place of startBelowCpuPercent and startBelowIoBytesPerSec. Default none. */
  vmStartBelow: Record<string, VmStartBelow>;
}

/** A VM's own pressure thresholds: the fields it does not give follow the host's. */
export type VmPressure = Partial<PressurePolicy>;

/** A VM's own start thresholds (0: off). */
export interface VmStartBelow {
  cpuPercent: number;
  ioBytesPerSec: number;
}

export const DEFAULT_POLICY: Readonly<Required<HostPolicy>> = Object.freeze({
  maxGuestTokens: 4,
  maxHypervisorTokens: 1,
  leaseTtlMs: 30_000,
  allowOverrun: false,
  reportIntervalMs: 10_000,
  throttleAboveCpuPercent: 60,
  pauseAboveCpuPercent: 85,
  resumeBelowCpuPercent: 50,
  throttleAboveIoBytesPerSec: 0,
  pauseAboveIoBytesPerSec: 0,
  resumeBelowIoBytesPerSec: 0,
  budgetCpuPercent: 0,
  budgetIoBytesPerSec: 0,
  throttledCpuPercent: 25,
  throttledIoBytesPerSec: 10 * 1024 * 1024,
  budgetDwellMs: 30_000,
  maxPauseMs: 600_000,
  pauseWindowGuardMs: 300_000,
  budgetMode: 'fixed',
  throttleAboveIoPressurePercent: 10,
  pauseAboveIoPressurePercent: 25,
  resumeBelowIoPressurePercent: 5,
  throttleAboveCpuPressurePercent: 20,
  pauseAboveCpuPressurePercent: 40,
  resumeBelowCpuPressurePercent: 10,
  throttleAboveMemoryPressurePercent: 5,
  pauseAboveMemoryPressurePercent: 15,
  resumeBelowMemoryPressurePercent: 2,
  throttleAboveDiskAwaitMs: 20,
  pauseAboveDiskAwaitMs: 50,
  resumeBelowDiskAwaitMs: 10,
  followPlan: true,
  minStartGapMs: 60_000,
  hostBudgetCpuPercent: 0,
  hostBudgetIoBytesPerSec: 0,
  startBelowCpuPercent: 60,
  startBelowIoBytesPerSec: 0,
  hostStartBelowCpuPercent: 90,
  hostStartBelowIoBytesPerSec: 0,
  hypervisorBudgetCpuPercent: 0,
  hypervisorBudgetIoBytesPerSec: 0,
  vmStartBelow: Object.freeze({}) as Record<string, VmStartBelow>,
  vmPressure: Object.freeze({}) as Record<string, VmPressure>,
});

export const LIMITS = Object.freeze({
  maxTokensPerKind: 1000,
  minTtlMs: 1_000,
  maxTtlMs: 3_600_000,
  minReportIntervalMs: 1_000,
  maxReportIntervalMs: 3_600_000,
  /** A CPU budget is a share of one core: 100 per core, up to 1,024 cores. */
  maxCpuBudgetPercent: 102_400,
  maxIoBytesPerSec: Number.MAX_SAFE_INTEGER,
  maxDwellMs: 3_600_000,
  maxPauseMs: 7 * 24 * 3_600_000,
  maxPauseWindowGuardMs: 7 * 24 * 3_600_000,
  maxStartGapMs: 24 * 3_600_000,
  /** An await past a minute is a dead disk, not a threshold. */
  maxDiskAwaitMs: 60_000,
});

/** Every pressure threshold, by signal: throttle, pause, resume and the highest value allowed. */
export const PRESSURE_THRESHOLDS = [
  ['throttleAboveIoPressurePercent', 'pauseAboveIoPressurePercent', 'resumeBelowIoPressurePercent', 100],
  ['throttleAboveCpuPressurePercent', 'pauseAboveCpuPressurePercent', 'resumeBelowCpuPressurePercent', 100],
  ['throttleAboveMemoryPressurePercent', 'pauseAboveMemoryPressurePercent', 'resumeBelowMemoryPressurePercent', 100],
  ['throttleAboveDiskAwaitMs', 'pauseAboveDiskAwaitMs', 'resumeBelowDiskAwaitMs', LIMITS.maxDiskAwaitMs],
] as const satisfies readonly Thresholds<keyof PressurePolicy>[];

/** The fields a VM's pressure override may give. */
export const PRESSURE_FIELDS: readonly (keyof PressurePolicy)[] = PRESSURE_THRESHOLDS.flatMap(([t, p, r]) => [t, p, r]);

/**
 * The policy in force for one VM's own load: the host's, with the pressure thresholds the VM's override
 * gives in place of the host's. The budget controller, the start gate and the signal shown per agent all
 * read a VM's thresholds through this, so that they cannot disagree.
 */
export function vmPressurePolicy<P extends PressurePolicy & Pick<HostPolicy, 'vmPressure'>>(policy: P, vm: string): P {
  const own = policy.vmPressure?.[vm];
  if (!own) return policy;
  const given = Object.entries(own).filter(
    ([field, v]) => v !== undefined && PRESSURE_FIELDS.includes(field as keyof PressurePolicy),
  );
  return { ...policy, ...Object.fromEntries(given) };
}

/** A policy field and what is wrong with its value. */
export interface PolicyProblem {
  field: keyof HostPolicy;
  problem: string;
}

/** The wire (and SetPolicyRequest) name of a policy field: `maxGuestTokens` → `max_guest_tokens`. */
export function policyWireName(field: keyof HostPolicy): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A signal's thresholds: throttle, pause, resume, and the highest value allowed. */
type Thresholds<F extends keyof HostPolicy = keyof HostPolicy> = readonly [F, F, F, number];

const BUDGET_THRESHOLDS: readonly Thresholds[] = [
  ['throttleAboveCpuPercent', 'pauseAboveCpuPercent', 'resumeBelowCpuPercent', 100],
  ['throttleAboveIoBytesPerSec', 'pauseAboveIoBytesPerSec', 'resumeBelowIoBytesPerSec', LIMITS.maxIoBytesPerSec],
];

function intProblem(field: keyof HostPolicy, v: unknown, min: number, max: number): PolicyProblem | undefined {
  if (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max) return undefined;
  return { field, problem: `must be an integer from ${min} to ${max}, got ${String(v)}` };
}

/**
 * The problems of one signal's thresholds in `p`: throttle and pause thresholds (0 = off) with pause above
 * throttle, and a resume threshold under both, so that a backup is not loosened by the same load that
 * tightened it (hysteresis). A conflict is laid on the field just `changed`; `name` spells the fields.
 */
function thresholdProblems(
  p: Readonly<Partial<Record<keyof HostPolicy, unknown>>>,
  [throttle, pause, resume, max]: Thresholds,
  changed: ReadonlySet<keyof HostPolicy>,
  name: (field: keyof HostPolicy) => string,
): PolicyProblem[] {
  const ranges = [throttle, pause, resume].flatMap((f) => intProblem(f, p[f], 0, max) ?? []);
  if (ranges.length > 0) return ranges;
  const [t, pa, r] = [p[throttle] as number, p[pause] as number, p[resume] as number];
  const blame = (a: keyof HostPolicy, b: keyof HostPolicy) => (changed.has(a) && !changed.has(b) ? a : b);
  const problems: PolicyProblem[] = [];
  if (t > 0 && pa > 0 && pa <= t) {
    const field = blame(throttle, pause);
    problems.push({ field, problem: `${name(pause)} (${pa}) must be above ${name(throttle)} (${t})` });
  }
  const lowest = Math.min(...[t, pa].filter((v) => v > 0));
  if (lowest !== Infinity && (r < 1 || r >= lowest)) {
    const limit = lowest === t ? throttle : pause;
    problems.push({
      field: blame(limit, resume),
      problem: `${name(resume)} (${r}) must be from 1 to below ${name(limit)} (${lowest})`,
    });
  }
  return problems;
}

/**
 * The problems of one VM's pressure override, each laid on `vmPressure` and naming the VM and its key
 * (`keyOf`): only pressure thresholds, at least one, and each signal it touches consistent once merged with
 * the host's thresholds (the host's named as such).
 */
function vmPressureProblems(
  p: Required<HostPolicy>,
  vm: string,
  own: VmPressure,
  keyOf: (field: keyof HostPolicy) => string,
): PolicyProblem[] {
  const problem = (what: string): PolicyProblem => ({ field: 'vmPressure', problem: `${vm}: ${what}` });
  if (!isValidName(vm)) return [{ field: 'vmPressure', problem: `"${vm}" is not a valid VM name` }];
  if (typeof own !== 'object' || own === null) return [problem('must be a mapping of pressure thresholds')];
  const gives = (f: keyof HostPolicy) => own[f as keyof VmPressure] !== undefined;
  const given = (Object.keys(own) as (keyof VmPressure)[]).filter(gives);
  const unknown = given.find((f) => !PRESSURE_FIELDS.includes(f));
  if (unknown !== undefined) return [problem(`${unknown} is not a pressure threshold`)];
  if (given.length === 0) return [problem('gives no threshold: give one, or drop the VM')];
  const name = (f: keyof HostPolicy) => (gives(f) ? keyOf(f) : `the host's ${keyOf(f)}`);
  return PRESSURE_THRESHOLDS.filter(([t, pa, r]) => [t, pa, r].some(gives))
    .flatMap((group) => thresholdProblems(vmPressurePolicy(p, vm), group, new Set(given), name))
    .map((x) => problem(`${keyOf(x.field)}: ${x.problem}`));
}

/**
 * Every problem of a complete policy, in field order. `changed` says which fields the caller set, so that
 * a conflict between two fields is laid on the one that was just set (setting the throttle threshold below
 * the resume threshold blames the throttle threshold). `nameOf` spells the other field a problem mentions
 * as the caller knows it (the wire name by default; the config file's key), `vmKeyOf` a key of a VM's
 * pressure override.
 */
export function checkPolicy(
  p: Required<HostPolicy>,
  changed: ReadonlySet<keyof HostPolicy> = new Set(),
  nameOf: (field: keyof HostPolicy) => string = policyWireName,
  vmKeyOf: (field: keyof HostPolicy) => string = policyWireName,
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const intIn = (field: keyof HostPolicy, min: number, max: number) => {
    const problem = intProblem(field, p[field], min, max);
    if (problem) problems.push(problem);
  };
  intIn('maxGuestTokens', 1, LIMITS.maxTokensPerKind);
  intIn('maxHypervisorTokens', 1, LIMITS.maxTokensPerKind);
  intIn('leaseTtlMs', LIMITS.minTtlMs, LIMITS.maxTtlMs);
  intIn('reportIntervalMs', LIMITS.minReportIntervalMs, LIMITS.maxReportIntervalMs);
  for (const group of [...BUDGET_THRESHOLDS, ...PRESSURE_THRESHOLDS])
    problems.push(...thresholdProblems(p, group, changed, nameOf));
  intIn('budgetCpuPercent', 0, LIMITS.maxCpuBudgetPercent);
  intIn('budgetIoBytesPerSec', 0, LIMITS.maxIoBytesPerSec);
  intIn('throttledCpuPercent', 0, LIMITS.maxCpuBudgetPercent);
  intIn('throttledIoBytesPerSec', 0, LIMITS.maxIoBytesPerSec);
  intIn('budgetDwellMs', 0, LIMITS.maxDwellMs);
  intIn('maxPauseMs', 0, LIMITS.maxPauseMs);
  intIn('pauseWindowGuardMs', 0, LIMITS.maxPauseWindowGuardMs);
  if (!(BUDGET_MODES as readonly unknown[]).includes(p.budgetMode))
    problems.push({ field: 'budgetMode', problem: `must be ${BUDGET_MODES.join(' or ')}, got "${p.budgetMode}"` });
  intIn('minStartGapMs', 0, LIMITS.maxStartGapMs);
  intIn('hostBudgetCpuPercent', 0, LIMITS.maxCpuBudgetPercent);
  intIn('hostBudgetIoBytesPerSec', 0, LIMITS.maxIoBytesPerSec);
  intIn('startBelowCpuPercent', 0, 100);
  intIn('startBelowIoBytesPerSec', 0, LIMITS.maxIoBytesPerSec);
  intIn('hostStartBelowCpuPercent', 0, 100);
  intIn('hostStartBelowIoBytesPerSec', 0, LIMITS.maxIoBytesPerSec);
  intIn('hypervisorBudgetCpuPercent', 0, LIMITS.maxCpuBudgetPercent);
  intIn('hypervisorBudgetIoBytesPerSec', 0, LIMITS.maxIoBytesPerSec);
  const whole = (v: unknown, max: number) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
  for (const [vm, t] of Object.entries(p.vmStartBelow)) {
    if (!isValidName(vm)) problems.push({ field: 'vmStartBelow', problem: `"${vm}" is not a valid VM name` });
    else if (!whole(t?.cpuPercent, 100))
      problems.push({
        field: 'vmStartBelow',
        problem: `${vm}: cpu_percent must be an integer from 0 to 100, got ${t?.cpuPercent}`,
      });
    else if (!whole(t.ioBytesPerSec, LIMITS.maxIoBytesPerSec))
      problems.push({
        field: 'vmStartBelow',
        problem: `${vm}: io_bytes_per_sec must be an integer from 0 to ${LIMITS.maxIoBytesPerSec}, got ${t.ioBytesPerSec}`,
      });
  }
  for (const [vm, own] of Object.entries(p.vmPressure)) problems.push(...vmPressureProblems(p, vm, own, vmKeyOf));
  return problems;
}

/**
 * Applies a partial change to a policy and validates the result.
 * @throws InvalidArgumentError naming (by its wire name) the first field out of range.
 */
export function applyPolicyPatch(base: HostPolicy, patch: Partial<HostPolicy>): HostPolicy {
  const next: HostPolicy = { ...base };
  const changed = new Set<keyof HostPolicy>();
  for (const [key, value] of Object.entries(patch) as [keyof HostPolicy, unknown][]) {
    if (value === undefined) continue;
    (next as unknown as Record<string, unknown>)[key] = value;
    changed.add(key);
  }
  const [first] = checkPolicy(completePolicy(next), changed);
  if (first) throw new InvalidArgumentError(policyWireName(first.field), first.problem);
  return next;
}

/** The policy with every field: the budget fields it lacks take their defaults. */
export function completePolicy(p: HostPolicy): Required<HostPolicy> {
  return { ...DEFAULT_POLICY, ...p };
}

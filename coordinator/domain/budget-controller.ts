/**
 * The budget controller: what a running backup may spend, decided again each time the load of the machine
 * it runs on is known: a guest backup's from its VM's agent reports, a hypervisor-level command's from the
 * host's own load (headroomctl host-backup samples it). Pure: it takes the host's policy, the backup's lease, the report, its own state from the
 * last decision and `now`, and says what to tell the agent, if anything.
 *
 * The rule. The machine's *foreground* load is its total minus what Headroom's own backups used (CPU; disk
 * reads plus writes): a backup must not be throttled by its own load. A backup runs at one of three levels:
 * full (its base budget), throttled (the reduced budget) or paused (stopped, its token kept and renewed).
 * - Tightening is immediate: foreground at or above the pause threshold pauses, at or above the throttle
 *   threshold throttles. The machine's own work comes first.
 * - Loosening has hysteresis and a dwell time, so that a load hovering near a threshold does not make the
 *   backup flap: a pause holds while the foreground stays at or above the throttle threshold (the resume
 *   threshold when throttling is off), a throttle while it stays at or above the resume threshold; and a
 *   backup is loosened only once every report for `budgetDwellMs` has asked for it. That count starts
 *   over at each change, so no loosening comes sooner than `budgetDwellMs` after the change before it.
 * - A pause is bounded, so that the backup still finishes in its window (as admission starts a late backup
 *   with a reduced budget rather than not at all): at most `maxPauseMs` in all, and never so long that its
 *   expected remaining work plus `pauseWindowGuardMs` no longer fits before its window's end. Where a pause
 *   could not last, the backup is throttled instead; a pause that reaches its bound resumes throttled.
 *   Decisions are only taken when a report arrives, so a pause is begun only when it may last the dwell
 *   time plus one report interval, and is ended at the last report before its bound.
 * Each signal (CPU, I/O) has its own thresholds (0 = off); the most restrictive one wins.
 */
import { formatDuration } from '../../common/util/duration';
import type { Budget, Lease } from './lease';
import { type HostPolicy, vmPressurePolicy } from './policy';
import { loadSignals, type MachineLoad, type Signal, type SignalSource } from './load-signals';
import { adaptBudget, type AdaptiveLimits, adaptiveReason } from './adaptive-control';

export type BudgetLevel = 'full' | 'throttled' | 'paused';

const RANK: Record<BudgetLevel, number> = { full: 0, throttled: 1, paused: 2 };

/** What an agent is told to enforce on a backup. */
export interface BudgetInstruction {
  budget: Budget;
  paused: boolean;
}

/** What the controller remembers of one running backup between two decisions. */
export interface BudgetState {
  level: BudgetLevel;
  /** What the agent was last told; undefined when that is not known (a backup found running after a restart). */
  told: BudgetInstruction | undefined;
  /** Since when every report has asked for a looser level than this one; undefined when the last did not. */
  calmSince: number | undefined;
  /** Time spent in earlier pauses. */
  pausedMs: number;
  /** When the current pause began; set exactly when the level is paused. */
  pausedSince: number | undefined;
  /** The adaptive budget's controllers (policy budgetMode adaptive); absent until its first decision. */
  adaptive?: AdaptiveLimits;
}

export interface BudgetDecision {
  state: BudgetState;
  /** The signal the decision followed (load-signals.ts). */
  signal: SignalSource;
  /** Present when the agent must be told something new, with why (for its log and ours). */
  command?: BudgetInstruction & { reason: string };
}

/** Who runs the foreground the backup must give way to, as the reasons name it. */
export type Machine = 'VM' | 'host';

/** The parts of a lease the controller reads: its VM's own pressure thresholds apply to a guest backup. */
export type ControlledLease = Pick<Lease, 'vm' | 'slot' | 'budget'>;

/** A backup just granted: it runs on its token's budget, unpaused. */
export function grantedBudgetState(lease: ControlledLease): BudgetState {
  return {
    level: 'full',
    told: { budget: { ...lease.budget }, paused: false },
    calmSince: undefined,
    pausedMs: 0,
    pausedSince: undefined,
  };
}

/**
 * A backup found running without knowing what its agent was told (its token was restored after a
 * coordinator restart): the next decision states its budget whatever it is, so that a backup paused before
 * the restart is not left paused.
 */
export function unknownBudgetState(): BudgetState {
  return { level: 'full', told: undefined, calmSince: undefined, pausedMs: 0, pausedSince: undefined };
}

/** The budget of a backup at full level: its token's where the token sets one, else the host policy's (0 = no limit). */
export function baseBudget(policy: Required<HostPolicy>, lease: ControlledLease): Budget {
  return {
    ioBytesPerSec: lease.budget.ioBytesPerSec || policy.budgetIoBytesPerSec,
    cpuPercent: lease.budget.cpuPercent || policy.budgetCpuPercent,
  };
}

/** The tighter of two budgets, limit by limit (0 = no limit, so any limit is tighter). */
export function tighterBudget(a: Budget, b: Budget): Budget {
  const lower = (x: number, y: number) => (y === 0 ? x : x === 0 ? y : Math.min(x, y));
  return { ioBytesPerSec: lower(a.ioBytesPerSec, b.ioBytesPerSec), cpuPercent: lower(a.cpuPercent, b.cpuPercent) };
}

/** The budget of a throttled or paused backup: the policy's reduced budget, never above the base one. */
export function reducedBudget(policy: Required<HostPolicy>, base: Budget): Budget {
  return tighterBudget(base, { ioBytesPerSec: policy.throttledIoBytesPerSec, cpuPercent: policy.throttledCpuPercent });
}

const rate = (v: number) => `${(v / (1024 * 1024)).toFixed(1)} MiB/s`;
const span = (ms: number) => formatDuration(Math.max(0, Math.round(ms / 1_000) * 1_000));

/** The level one signal asks for, given the current level (the hysteresis). */
function signalWants(s: Signal, current: BudgetLevel): BudgetLevel {
  const throttleOn = s.throttleAbove > 0;
  const pauseOn = s.pauseAbove > 0;
  if (!throttleOn && !pauseOn) return 'full';
  if (pauseOn && s.value >= s.pauseAbove) return 'paused';
  if (pauseOn && current === 'paused' && s.value >= (throttleOn ? s.throttleAbove : s.resumeBelow)) return 'paused';
  if (throttleOn && s.value >= s.throttleAbove) return 'throttled';
  if (s.value >= s.resumeBelow) return current === 'full' ? 'full' : 'throttled';
  return 'full';
}

function busyReason(machine: Machine, s: Signal, level: BudgetLevel): string {
  return level === 'paused'
    ? `${machine} busy: ${s.name} ${s.format(s.value)} >= ${s.format(s.pauseAbove)}`
    : `${machine} busy: ${s.name} ${s.format(s.value)} >= ${s.format(s.throttleAbove)}`;
}

function calmReason(machine: Machine, signals: Signal[], calmForMs: number): string {
  const on = signals.filter((s) => s.throttleAbove > 0 || s.pauseAbove > 0);
  const values = on.map((s) => `${s.name} ${s.format(s.value)}`).join(', ');
  return `${machine} calmer for ${span(calmForMs)}${values ? `: ${values}` : ''}`;
}

/**
 * How long a pause that begins (or began) at `pauseStart` may last, and what bounds it: the pause time the
 * policy has left for this backup, or the room before its window's end once its expected remaining work and
 * the guard margin are set aside. Work does not progress while paused, so both shrink with the pause.
 */
function pauseRoom(
  policy: Required<HostPolicy>,
  lease: ControlledLease,
  pausedMs: number,
  pauseStart: number,
  now: number,
) {
  let ms = policy.maxPauseMs - pausedMs;
  let why = `paused ${span(pausedMs + now - pauseStart)} of at most ${span(policy.maxPauseMs)} in all`;
  const { windowEnd, expectedEnd } = lease.slot;
  if (windowEnd > 0) {
    const remaining = Math.max(0, expectedEnd + pausedMs - pauseStart);
    const byWindow = windowEnd - policy.pauseWindowGuardMs - remaining - pauseStart;
    if (byWindow < ms) {
      ms = byWindow;
      why =
        `its window ends in ${span(windowEnd - now)}, and its expected remaining ${span(remaining)} ` +
        `plus a ${span(policy.pauseWindowGuardMs)} guard must still fit`;
    }
  }
  return { ms, why };
}

function budgetOf(policy: Required<HostPolicy>, lease: ControlledLease, level: BudgetLevel): BudgetInstruction {
  const base = baseBudget(policy, lease);
  return level === 'full'
    ? { budget: base, paused: false }
    : { budget: reducedBudget(policy, base), paused: level === 'paused' };
}

function sameInstruction(a: BudgetInstruction, b: BudgetInstruction): boolean {
  return (
    a.paused === b.paused &&
    a.budget.cpuPercent === b.budget.cpuPercent &&
    a.budget.ioBytesPerSec === b.budget.ioBytesPerSec
  );
}

/** "cpu 25%, io 10.0 MiB/s", "no limit", "paused (cpu 25% when resumed)": an instruction for logs. */
export function describeInstruction(i: BudgetInstruction): string {
  const limits = [
    ...(i.budget.cpuPercent ? [`cpu ${i.budget.cpuPercent}%`] : []),
    ...(i.budget.ioBytesPerSec ? [`io ${rate(i.budget.ioBytesPerSec)}`] : []),
  ];
  const budget = limits.length ? limits.join(', ') : 'no limit';
  return i.paused ? `paused (${budget} when resumed)` : budget;
}

/**
 * Decides a backup's budget from the latest load of its machine (its VM's report, under the VM's own
 * pressure thresholds where the host's policy gives it some; or the host's sample, under the host's).
 */
export function decideBudget(
  hostPolicy: Required<HostPolicy>,
  lease: ControlledLease,
  load: MachineLoad,
  state: BudgetState,
  now: number,
  machine: Machine = 'VM',
): BudgetDecision {
  const policy = machine === 'VM' ? vmPressurePolicy(hostPolicy, lease.vm) : hostPolicy;
  const dwell = policy.budgetDwellMs;
  const { source: signal, signals } = loadSignals(policy, load);
  let wanted: BudgetLevel = 'full';
  let driver: Signal | undefined;
  for (const s of signals) {
    const w = signalWants(s, state.level);
    if (RANK[w] > RANK[wanted]) [wanted, driver] = [w, s];
  }
  const calmSince = RANK[wanted] < RANK[state.level] ? (state.calmSince ?? now) : undefined;

  let level = state.level;
  let reason = '';
  if (RANK[wanted] > RANK[state.level]) {
    level = wanted;
    reason = busyReason(machine, driver!, wanted);
  } else if (calmSince !== undefined && now - calmSince >= dwell) {
    level = wanted;
    reason = calmReason(machine, signals, now - calmSince);
  }

  if (level === 'paused') {
    const starting = state.level !== 'paused';
    const pauseStart = starting ? now : state.pausedSince!;
    const room = pauseRoom(policy, lease, state.pausedMs, pauseStart, now);
    if (starting && room.ms < dwell + policy.reportIntervalMs) {
      level = 'throttled';
      reason = `${reason}; throttled, not paused: ${room.why}`;
    } else if (!starting && now + policy.reportIntervalMs > pauseStart + room.ms) {
      // The next report would come too late to end the pause in time: end it now.
      level = 'throttled';
      reason = `resumed throttled: ${room.why}`;
    }
  }

  let next: BudgetState = { ...state, calmSince };
  if (level !== state.level) {
    next = { ...next, level, calmSince: undefined };
    if (state.level === 'paused')
      next = { ...next, pausedMs: state.pausedMs + now - state.pausedSince!, pausedSince: undefined };
    if (level === 'paused') next = { ...next, pausedSince: now };
  }
  let instruction = budgetOf(policy, lease, level);
  let changeReason: string | undefined;
  if (policy.budgetMode === 'adaptive' && level !== 'paused') {
    // The thresholds still pause; under them each limit follows its AIMD controller.
    const adapted = adaptBudget(policy, lease, baseBudget(policy, lease), load, signals, state.adaptive ?? {}, now);
    next = { ...next, adaptive: adapted.limits };
    instruction = { budget: adapted.budget, paused: false };
    if (level === state.level) changeReason = adaptiveReason(machine, signals);
  }
  if (state.told && sameInstruction(state.told, instruction)) return { state: next, signal };
  if (level === state.level) {
    reason = !state.told
      ? `restating a ${level} backup's budget: what the agent was told is not known`
      : (changeReason ?? `the host policy's budget for a ${level} backup`);
  }
  return { state: { ...next, told: instruction }, signal, command: { ...instruction, reason } };
}

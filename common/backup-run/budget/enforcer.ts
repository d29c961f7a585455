/**
 * The contract between the agent and the mechanisms that hold a backup's process tree to its budget
 * (cgroup-v2.ts, cgroup-v1.ts, signals.ts), and the errors they throw. detect.ts picks the mechanism;
 * run-budget.ts drives one Enforcer per running backup.
 *
 * Usage, for one command started with common/backup-run/child-process.ts spawnChild():
 *
 *     const mechanism = detectEnforcement({ mode: 'auto', log });          // once per process
 *     const child = spawnChild(argv);
 *     const enforcer = mechanism.enforce({ pgid: child.pid!, exempt: () => child.watchdogPid });
 *     enforcer.apply({ cpuPercent: 20, ioBytesPerSec: 10e6 });           // at once, before it forks
 *     await child.watchdogReady; enforcer.pause(); ... enforcer.resume();  // the watchdog stays out
 *     const stopped = child.stop(graceMs); enforcer.release();              // SIGTERM sent: let it act on it
 *     await stopped; await enforcer.close();                                // the group is gone: remove its cgroups
 *
 * run-budget.ts does all of this for a guarded run (common/backup-run/guarded-run.ts RunControl).
 */
import type { PressureScope } from '../workload-pressure';
import type { Usage } from './process-usage';

export type { Usage } from './process-usage';

/** The mechanisms, best first, by their names on the wire (headroom.v1.Enforcement). */
export type Enforcement = 'CGROUP_V2' | 'CGROUP_V1' | 'SIGNALS';

/** What the agent's configuration may ask for: the best available, or one mechanism (or fail). */
export type EnforcementMode = 'auto' | 'cgroup-v2' | 'cgroup-v1' | 'signals';
export const ENFORCEMENT_MODES: readonly EnforcementMode[] = ['auto', 'cgroup-v2', 'cgroup-v1', 'signals'];

/** What a backup may spend; 0 means no limit, as on the wire. */
export interface Budget {
  /** Storage bytes per second, read and write each. */
  ioBytesPerSec: number;
  /** Share of one core, percent; above 100 for several cores. */
  cpuPercent: number;
}

export const NO_LIMIT: Budget = Object.freeze({ ioBytesPerSec: 0, cpuPercent: 0 });

/** The process group a backup runs in, as common/backup-run/child-process.ts starts it. */
export interface EnforcedGroup {
  /** The group's id: its leader's pid. */
  pgid: number;
  /**
   * A member to leave out (the watchdog that must stay able to stop the group should the agent die), or
   * undefined while it is not known. Read at every operation.
   */
  exempt(): number | undefined;
}

/** Holds one process group to a budget. Every method but close() is synchronous. */
export interface Enforcer {
  readonly enforcement: Enforcement;
  /** For people and the BudgetReport: where (the cgroup's path) and what the mechanism cannot do. */
  readonly detail: string;
  /** Sets the limits (0: none). Throws EnforcementError when the kernel refuses. */
  apply(budget: Budget): void;
  /** Stops every process of the group but the exempt one; they keep their state. Throws EnforcementError. */
  pause(): void;
  /** Undoes pause(); the limits of apply() hold again. Throws EnforcementError. */
  resume(): void;
  /**
   * For a command being stopped: undoes any pause or stopped phase so that it can act on its signal; the
   * caller changes nothing after it. Never throws.
   */
  release(): void;
  /** What the group has used since it was put under enforcement. Never throws. */
  usage(): Usage;
  /** After the group's processes are gone: removes what was created for it (its cgroups). Never rejects. */
  close(): Promise<void>;
}

/** A mechanism that this guest offers, ready to put process groups under it. */
export interface EnforcementMechanism {
  readonly enforcement: Enforcement;
  /** What it cannot do here, and why no better mechanism was used. */
  readonly detail: string;
  /**
   * Puts process group `group` under this mechanism, with no limits yet. Synchronous, so that it can be
   * called right after the spawn, before the command forks. Throws EnforcementError.
   */
  enforce(group: EnforcedGroup): Enforcer;
  /** What to use for a group this mechanism could not take (its cgroup could not be created). */
  readonly fallback?: EnforcementMechanism;
  /** Under cgroup v2: where the agent and the backups are, so that the workload's pressure is read apart. */
  readonly pressureScope?: PressureScope;
}

const MiB = 1024 * 1024;
/** memory.high's floor and ceiling when it is derived from the budget (autoMemoryHighBytes). */
export const AUTO_MEMORY_HIGH_MIN_BYTES = 64 * MiB;
export const AUTO_MEMORY_HIGH_MAX_BYTES = 512 * MiB;
/** How many seconds of the I/O budget the derived memory.high holds: read-ahead and dirty data in flight. */
const AUTO_MEMORY_HIGH_IO_SECONDS = 8;

/**
 * The memory a backup's group may hold (page cache included) before the kernel reclaims from it rather
 * than from the workload, when budget.memoryHighMiB is not set: a backup streams its data once, so cache
 * beyond a few seconds of its I/O budget only pushes out the workload's working set. 8 s of the I/O budget,
 * within 64..512 MiB; 512 MiB when the I/O is not limited.
 */
export function autoMemoryHighBytes(budget: Budget): number {
  if (budget.ioBytesPerSec <= 0) return AUTO_MEMORY_HIGH_MAX_BYTES;
  const bytes = AUTO_MEMORY_HIGH_IO_SECONDS * budget.ioBytesPerSec;
  return Math.round(Math.min(AUTO_MEMORY_HIGH_MAX_BYTES, Math.max(AUTO_MEMORY_HIGH_MIN_BYTES, bytes)));
}

/** The CFS period the CPU limit is expressed in: 100 ms, the kernel's default. */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses a CFS quota under 1 ms. */
const MIN_CPU_QUOTA_US = 1_000;

/** The CFS quota per CPU_PERIOD_US that allows `cpuPercent` % of one core. */
export function cpuQuotaUs(cpuPercent: number): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.round((cpuPercent / 100) * CPU_PERIOD_US));
}

/** Thrown by an Enforcer when the kernel refuses a change: `target` is the file or process, `code` the errno name. */
export class EnforcementError extends Error {
  constructor(
    readonly operation: string,
    readonly target: string,
    readonly code: string | undefined,
  ) {
    super(`${operation}: ${target}${code ? ` (${code})` : ''}`);
    this.name = 'EnforcementError';
  }
}

/** Thrown by detectEnforcement when the configured mechanism cannot be used in this guest, saying why. */
export class EnforcementUnavailableError extends Error {
  constructor(
    readonly mode: EnforcementMode,
    readonly reason: string,
  ) {
    super(`${mode} was asked for but cannot be used here: ${reason}`);
    this.name = 'EnforcementUnavailableError';
  }
}

/**
 * The planner's types: what callers pass and get back (planHost in planner.ts), and what its steps pass
 * each other. In one file so that the steps share types without importing one another.
 */
import type { Budget, TokenKind } from '../domain/lease';
import type { HostPolicy } from '../domain/policy';
import type { TargetLimits } from '../domain/targets';

/** One occurrence of a backup job. Times are Clock milliseconds. */
export interface PlanJob {
  /** Unique on the host and the same in every replan (e.g. `vm/job@cronTime`): how a kept slot is found. */
  id: string;
  kind: TokenKind;
  vm: string;
  /** It may start at or after this: its cron time. */
  earliestStart: number;
  /** It must finish by this. */
  windowEnd: number;
  /** Expected duration in ms, above 0 (duration-estimate.ts learns it from the job's history). */
  durationMs: number;
  /**
   * What it spends while it runs. A field of 0 is undeclared: the job then counts as the host budget's
   * field divided by its kind's cap, so that jobs declaring nothing are held back by the caps alone.
   */
  cost: Budget;
  /** Among jobs with the same window end, higher goes first. */
  priority: number;
  /** The shared target it writes to (PlanInput.targets); absent: none. */
  target?: string;
}

/** A backup running now: it holds its VM, its kind and its cost until its expected end. */
export interface RunningBackup {
  kind: TokenKind;
  vm: string;
  /** At or before `now` it holds nothing: the caller extends the estimate of a backup running late. */
  expectedEnd: number;
  cost: Budget;
  target?: string;
}

export interface PlanHost extends Pick<HostPolicy, 'maxGuestTokens' | 'maxHypervisorTokens'> {
  /** What all the backups running together may spend; a field of 0 is unlimited. */
  budget: Budget;
  /** Minimum time between two planned starts on the host, in ms; 0 for none. */
  minStartGapMs: number;
}

/** What a backup holds of a shared target over [start, end): one of its places, and `io` of its I/O budget. */
export interface TargetUse {
  start: number;
  end: number;
  io: number;
}

/**
 * A shared target (domain/targets.ts) as one host's plan sees it: its limits, and what the other hosts'
 * plans and running backups hold of it, which this host's slots must leave room for.
 */
export interface PlanTarget extends TargetLimits {
  others: readonly TargetUse[];
}

export interface PlanInput {
  now: number;
  host: PlanHost;
  /** The shared targets the jobs name; a job naming one not here is planned as naming none. */
  targets?: readonly PlanTarget[];
  jobs: readonly PlanJob[];
  running?: readonly RunningBackup[];
  /** The last plan's slots, kept where they still fit, and the ids of the jobs it left out for room. */
  previous?: {
    readonly slots: readonly { readonly id: string; readonly start: number }[];
    readonly noRoom?: readonly string[];
  };
}

export interface PlannedSlot {
  id: string;
  kind: TokenKind;
  vm: string;
  start: number;
  end: number;
  /** The shared target it writes to, and what it holds of the target's I/O budget. */
  target?: string;
  targetIo?: number;
}

export type UnplacedReason =
  /** The window is shorter than the expected duration. */
  | 'window-too-short'
  /** Too late: starting now it would not finish before its window's end. */
  | 'window-passed'
  /** Alone it would spend more than the host budget. */
  | 'cost-exceeds-budget'
  /** The slots placed before it (earlier deadlines, kept slots, running backups) leave no room in its window. */
  | 'no-room';

/** The rule that stands in the way. */
export type Blocker =
  | 'other-kind'
  | 'kind-cap'
  | 'vm-busy'
  | 'io-budget'
  | 'cpu-budget'
  | 'start-gap'
  /** Its shared target is at its concurrency or I/O budget then (other hosts' backups included). */
  | 'target-full';

export interface UnplacedJob {
  id: string;
  reason: UnplacedReason;
  /** For 'no-room': what stands in the way at the job's latest start, in this plan. */
  blockedBy?: Blocker;
}

/** A maximal run of slots of one kind, in start order. */
export interface Phase {
  kind: TokenKind;
  start: number;
  end: number;
}

export interface Plan {
  /** By start, then id. */
  slots: PlannedSlot[];
  /** In planning order. */
  unplaced: UnplacedJob[];
  phases: Phase[];
}

/** What a backup asks of the host while it runs (host-timeline.ts). */
export interface Need {
  kind: TokenKind;
  vm: string;
  io: number;
  cpu: number;
  /** Its shared target, and what it counts for against the target's I/O budget. */
  target?: string;
  targetIo?: number;
}

/** A job as the planner's steps see it (made by plan-prepared.ts). */
export interface Prepared {
  job: PlanJob;
  need: Need;
  /** The later of its earliest start and `now`: when it is ready to start. */
  readyAt: number;
  /** The last start that still finishes by its window's end. */
  latestStart: number;
  /** Why no plan can place it, even with the host to itself. */
  unplaceable?: UnplacedReason;
  /** Its place in planning order. */
  rank: number;
}

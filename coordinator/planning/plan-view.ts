/**
 * A host's plan from what the coordinator knows: the guest jobs the agents declared in their hellos and the
 * hypervisor jobs of the host's own schedule (coordinator.yaml's hypervisorJobs), expanded into occurrences
 * over the horizon; their durations learnt from the host's ended runs; the backups running now; the host's
 * policy (caps, backup budget, minimum start gap). Runs the planner and names each slot by VM and job again.
 * Pure: the caller passes the data and `now`. The plan keeper (plan-keeper.ts) hands it to the lessor, whose
 * grants follow it; `headroomctl plan` shows it.
 *
 * Cron times are read in this process's local time zone, as the agent reads them in the guest's: the two
 * agree when host and guests share a zone.
 */
// The agent's own cron evaluator: the plan must expand a schedule exactly as the agent that runs it does
// (its `H` fields hash the job's name the same way).
import { parseCron } from '../../common/util/cron';
import { estimateDurationMs, planHost } from '../planner';
import type { Budget, Lease, TokenKind } from '../domain/lease';
import type { Blocker, Phase, PlanJob, PlanTarget, UnplacedJob } from '../planner/types';
import { type HostPolicy, completePolicy } from '../domain/policy';
import type { EndedRun } from '../store/store';

export const DEFAULT_HORIZON_MS = 24 * 3_600_000;

/** A schedule firing every second over a week would be 600,000 runs: past this many, a job's are cut. */
const MAX_RUNS_PER_JOB = 1_000;

/** A job as an agent declared it (JobDeclaration). */
export interface DeclaredJob {
  name: string;
  schedule: string;
  windowMs: number;
  expectedDurationMs: number;
  declaredCost?: Budget | null;
  priority: number;
  /** The shared target it writes to; empty or absent: none. */
  target?: string;
}

export interface PlanViewInput {
  now: number;
  horizonMs: number;
  policy: HostPolicy;
  /**
   * The jobs declared for each VM: by its agent (GUEST) or in the host's schedule (HYPERVISOR). `declaredAt`:
   * when the agent declared them (its last hello); an occurrence due before then is not planned.
   */
  declared: readonly { vm: string; kind: TokenKind; jobs: readonly DeclaredJob[]; declaredAt?: number }[];
  /** The last plan's slots (ViewSlot.id), kept where they still fit, and the runs it left out for room. */
  previous?: {
    readonly slots: readonly { readonly id: string; readonly start: number }[];
    readonly noRoom?: readonly string[];
  };
  /** The host's active leases. */
  running: readonly Lease[];
  /** The host's ended runs, oldest first: successful releases give durations, every run its start. */
  ended: readonly EndedRun[];
  /** The shared targets, with what the other hosts' plans and backups hold of each (plan-keeper.ts). */
  targets?: readonly PlanTarget[];
}

export interface ViewSlot {
  /** The planner's id of the run, the same in every replan. */
  id: string;
  vm: string;
  job: string;
  kind: TokenKind;
  start: number;
  end: number;
  earliestStart: number;
  windowEnd: number;
  /** The shared target it writes to, and what it holds of the target's I/O budget. */
  target?: string;
  targetIo?: number;
}

export interface ViewUnplaced {
  vm: string;
  job: string;
  kind: TokenKind;
  /** For people: "no room in its window (the VM is busy)". */
  reason: string;
  /** 0 when the schedule could not be read. */
  earliestStart: number;
  windowEnd: number;
}

export interface PlanView {
  now: number;
  horizonEnd: number;
  /** What all backups on the host together may spend, as planned; 0 fields are unlimited. */
  budget: Budget;
  slots: ViewSlot[];
  unplaced: ViewUnplaced[];
  /** The planner's ids of the runs it left out for want of room: a replan keeps the slots while only these are. */
  noRoom: string[];
  phases: Phase[];
}

interface Run {
  vm: string;
  kind: TokenKind;
  job: string;
  earliestStart: number;
  windowEnd: number;
}

/** @throws InvalidArgumentError from the planner if an input is malformed (a bug here, not the caller's). */
export function buildPlanView(input: PlanViewInput): PlanView {
  const { now, horizonMs } = input;
  const policy = completePolicy(input.policy);
  const horizonEnd = now + horizonMs;
  const durations = runDurations(input.ended);
  const lastStart = lastStarts(input);
  const runs = new Map<string, Run>();
  const jobs: PlanJob[] = [];
  const unreadable: ViewUnplaced[] = [];

  for (const agent of input.declared) {
    const { kind } = agent;
    for (const decl of agent.jobs) {
      let cron;
      try {
        cron = parseCron(decl.schedule, decl.name);
      } catch (e) {
        const reason = `its schedule ${JSON.stringify(decl.schedule)} cannot be read: ${(e as Error).message}`;
        unreadable.push({ vm: agent.vm, job: decl.name, kind, reason, earliestStart: 0, windowEnd: 0 });
        continue;
      }
      const key = runKey(kind, agent.vm, decl.name);
      const durationMs = estimateDurationMs(decl.expectedDurationMs, durations.get(key) ?? []);
      // The latest occurrence may still be in its window: it waits in the queue, or has not asked yet.
      // Once a token was granted for it, it runs (or ran) and is not planned again. Nor is one due before its
      // agent declared the job: an agent does not catch up on occurrences due before it started, so its slot
      // would only hold the VM, and the host's minimum start gap would push every later run of the job
      // (issue 15: an every-minute job ran at :38, the second its agent said hello, from then on). An agent
      // that reconnects within a window and asks again is served as an unplanned request.
      let at = cron.prev(now);
      if (at + decl.windowMs <= now || (lastStart.get(key) ?? -Infinity) >= at || at < (agent.declaredAt ?? -Infinity))
        at = cron.next(now);
      for (let n = 0; at < horizonEnd && n < MAX_RUNS_PER_JOB; n++, at = cron.next(at)) {
        const id = slotId(kind, agent.vm, decl.name, at);
        runs.set(id, { vm: agent.vm, kind, job: decl.name, earliestStart: at, windowEnd: at + decl.windowMs });
        jobs.push({
          id,
          kind,
          vm: agent.vm,
          earliestStart: at,
          windowEnd: at + decl.windowMs,
          durationMs,
          cost: decl.declaredCost ?? { ioBytesPerSec: 0, cpuPercent: 0 },
          priority: decl.priority,
          ...(decl.target ? { target: decl.target } : {}),
        });
      }
    }
  }

  const budget: Budget = { ioBytesPerSec: policy.hostBudgetIoBytesPerSec, cpuPercent: policy.hostBudgetCpuPercent };
  const plan = planHost({
    now,
    host: {
      maxGuestTokens: policy.maxGuestTokens,
      maxHypervisorTokens: policy.maxHypervisorTokens,
      budget,
      minStartGapMs: policy.minStartGapMs,
    },
    jobs,
    previous: input.previous,
    ...(input.targets ? { targets: input.targets } : {}),
    running: input.running.map((l) => ({
      kind: l.kind,
      vm: l.vm,
      // A backup past its expected end still holds its VM at least until its token would expire.
      expectedEnd: Math.max(l.slot.expectedEnd, l.expiresAt),
      cost: l.budget,
      ...(l.target ? { target: l.target } : {}),
    })),
  });

  return {
    now,
    horizonEnd,
    budget,
    slots: plan.slots.map((s) => {
      const run = runs.get(s.id)!;
      return {
        id: s.id,
        vm: s.vm,
        job: run.job,
        kind: s.kind,
        start: s.start,
        end: s.end,
        earliestStart: run.earliestStart,
        windowEnd: run.windowEnd,
        ...(s.target ? { target: s.target, targetIo: s.targetIo } : {}),
      };
    }),
    unplaced: [
      ...unreadable,
      ...plan.unplaced.map((u) => {
        const run = runs.get(u.id)!;
        return {
          vm: run.vm,
          job: run.job,
          kind: run.kind,
          reason: describeUnplaced(u),
          earliestStart: run.earliestStart,
          windowEnd: run.windowEnd,
        };
      }),
    ],
    noRoom: plan.unplaced.filter((u) => u.reason === 'no-room').map((u) => u.id),
    phases: plan.phases,
  };
}

/** A run's ViewSlot.id: its job's key and its occurrence, so that every replan, and a plan read over the wire, names it alike. */
export const slotId = (kind: TokenKind, vm: string, job: string, earliestStart: number): string =>
  `${runKey(kind, vm, job)}@${earliestStart}`;

// The kind is in the key: a VM's guest job and a hypervisor job of the same name are two jobs.
const runKey = (kind: TokenKind, vm: string, job: string) => `${kind === 'GUEST' ? '' : 'hv:'}${vm}/${job}`;

const BLOCKERS: Record<Blocker, string> = {
  'other-kind': 'the host runs the other kind of backup then',
  'kind-cap': "the host's cap of concurrent backups is reached",
  'vm-busy': 'the VM runs another backup',
  'io-budget': "the host's I/O budget is spent",
  'cpu-budget': "the host's CPU budget is spent",
  'start-gap': 'other backups start then',
  'target-full': 'its shared target is full then (backups of every host count)',
};

export function describeUnplaced(u: UnplacedJob): string {
  switch (u.reason) {
    case 'window-too-short':
      return 'its window is shorter than its expected duration';
    case 'window-passed':
      return 'too late: it would not finish before its window ends';
    case 'cost-exceeds-budget':
      return "alone it would spend more than the host's budget";
    case 'no-room':
      return u.blockedBy ? `no room in its window: ${BLOCKERS[u.blockedBy]}` : 'no room in its window';
  }
}

/** Each VM's job's successful run durations, oldest first. Failed runs say little about how long a backup takes. */
export function runDurations(ended: readonly EndedRun[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of ended) {
    if (r.state !== 'released' || !r.outcome?.success) continue;
    const key = runKey(r.kind, r.vm, r.job);
    const runs = out.get(key) ?? [];
    runs.push(r.outcome.durationMs);
    out.set(key, runs);
  }
  return out;
}

/** When each VM's job last got a token, from the ended runs and the leases held now. */
function lastStarts({ ended, running }: PlanViewInput): Map<string, number> {
  const out = new Map<string, number>();
  const note = (kind: TokenKind, vm: string, job: string, at: number) => {
    const key = runKey(kind, vm, job);
    out.set(key, Math.max(at, out.get(key) ?? -Infinity));
  };
  for (const r of ended) note(r.kind, r.vm, r.job, r.grantedAt);
  for (const l of running) note(l.kind, l.vm, l.job, l.grantedAt);
  return out;
}

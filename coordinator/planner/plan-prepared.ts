/**
 * Jobs as the planner's steps see them (Prepared, types.ts): what each asks of the host, its first and
 * last possible start, why no plan can place it, and its place in planning order; with the timeline of
 * the backups already running. Pure.
 */
import { HostTimeline, capOf } from './host-timeline';
import type { Budget, TokenKind } from '../domain/lease';
import { targetIoBudget } from '../domain/targets';
import type { Need, PlanHost, PlanInput, PlanJob, Prepared, RunningBackup, UnplacedReason } from './types';

export function prepare(job: PlanJob, { now, host, targets }: PlanInput): Prepared {
  const need = withTarget(needOf(job.kind, job.vm, job.cost, host), job, targets);
  const latestStart = job.windowEnd - job.durationMs;
  let unplaceable: UnplacedReason | undefined;
  if (latestStart < job.earliestStart) unplaceable = 'window-too-short';
  else if (latestStart < now) unplaceable = 'window-passed';
  else if (
    (host.budget.ioBytesPerSec > 0 && need.io > host.budget.ioBytesPerSec) ||
    (host.budget.cpuPercent > 0 && need.cpu > host.budget.cpuPercent)
  ) {
    unplaceable = 'cost-exceeds-budget';
  }
  return { job, need, readyAt: Math.max(job.earliestStart, now), latestStart, unplaceable, rank: 0 };
}

export function needOf(kind: TokenKind, vm: string, cost: Budget, host: PlanHost): Need {
  const cap = capOf(kind, host);
  return {
    kind,
    vm,
    io: effectiveCost(cost.ioBytesPerSec, host.budget.ioBytesPerSec, cap),
    cpu: effectiveCost(cost.cpuPercent, host.budget.cpuPercent, cap),
  };
}

/**
 * The need with the shared target it writes to, counted as the lessor grants it (domain/targets.ts): its
 * declared I/O, else the target's fair share. A target not in `targets` is not planned for.
 */
function withTarget(
  need: Need,
  { target, cost }: Pick<PlanJob | RunningBackup, 'target' | 'cost'>,
  targets: PlanInput['targets'],
): Need {
  const limits = target ? targets?.find((t) => t.name === target) : undefined;
  return limits ? { ...need, target: limits.name, targetIo: targetIoBudget(cost.ioBytesPerSec, limits) } : need;
}

function effectiveCost(declared: number, budget: number, cap: number): number {
  if (budget === 0) return 0; // unlimited: what a job spends does not matter
  return declared > 0 ? declared : Math.max(1, Math.floor(budget / cap));
}

/** Planning order: earliest window end first, then higher priority, then longer, then id. */
export function compareJobs(a: Prepared, b: Prepared): number {
  const x = a.job;
  const y = b.job;
  // Of two jobs due together, the longer must start first.
  return (
    x.windowEnd - y.windowEnd ||
    y.priority - x.priority ||
    y.durationMs - x.durationMs ||
    (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)
  );
}

/** A timeline holding the running backups from now to their expected end. */
export function timelineWithRunning({ host, now, running = [], targets }: PlanInput): HostTimeline {
  const timeline = new HostTimeline(host, targets);
  for (const r of running) {
    if (r.expectedEnd > now)
      timeline.add(withTarget(needOf(r.kind, r.vm, r.cost, host), r, targets), now, r.expectedEnd, false);
  }
  return timeline;
}

/**
 * Why the storm benchmark's plan left runs out: whether each could not be placed by any plan (proven) or
 * might have been (the planner's miss). Pure computation.
 */
import { HostTimeline, prepare, searchPlacements } from '../coordinator/planner';
import type { Plan, PlanInput, PlanJob } from '../coordinator/planner/types';

/** Placements the search of one VM's jobs may try before it gives up (then: maybe feasible). */
const SEARCH_NODES = 2_000_000;

export interface LeftOutFigures {
  leftOut: number;
  /** Its window is shorter than its duration, has passed, or it costs more than the whole budget. */
  cannotRunAlone: number;
  /**
   * Left out of a VM whose jobs with windows around it cannot all be placed even with the host to
   * themselves (an exhaustive search, plan-search.ts, on an empty timeline): every plan leaves at least
   * one of them out, so one left-out run per such VM is proven.
   */
  provenByVm: number;
  /** The rest: a plan placing them might exist. */
  maybeFeasible: number;
  /** Their ids: every run left out of a VM not proven, since which of them a plan must leave out is not known. */
  maybeFeasibleIds: string[];
}

export function classifyLeftOut(input: PlanInput, plan: Plan): LeftOutFigures {
  const byId = new Map(input.jobs.map((j) => [j.id, j]));
  const noRoom = plan.unplaced.filter((u) => u.reason === 'no-room').map((u) => byId.get(u.id)!);
  const byVm = new Map<string, PlanJob[]>();
  for (const j of noRoom) byVm.set(j.vm, [...(byVm.get(j.vm) ?? []), j]);
  let provenByVm = 0;
  const maybeFeasibleIds: string[] = [];
  for (const [vm, left] of byVm) {
    const around = input.jobs.filter(
      (j) => j.vm === vm && left.some((l) => j.earliestStart < l.windowEnd && l.earliestStart < j.windowEnd),
    );
    const prepared = around.map((j, rank) => ({ ...prepare(j, input), rank })).filter((p) => !p.unplaceable);
    const timeline = new HostTimeline(input.host);
    const result = searchPlacements(timeline, prepared, SEARCH_NODES);
    if (!result.found && result.exhausted) provenByVm++;
    if (!result.found && result.exhausted && left.length === 1) continue;
    maybeFeasibleIds.push(...left.map((j) => j.id));
  }
  const leftOut = plan.unplaced.length;
  const cannotRunAlone = leftOut - noRoom.length;
  return { leftOut, cannotRunAlone, provenByVm, maybeFeasible: noRoom.length - provenByVm, maybeFeasibleIds };
}

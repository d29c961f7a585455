/**
 * The planner's exact step (planner.ts): whether a few jobs can all be placed around what the timeline
 * already holds, found by a bounded search rather than guessed. Pure.
 */
import type { HostTimeline } from './host-timeline';
import type { Prepared } from './types';

export type SearchResult =
  /** Every job placed: their starts. */
  | { found: Map<Prepared, number> }
  /** The search covered every case: no plan places them all. */
  | { found: undefined; exhausted: true }
  /** The node budget ran out first. */
  | { found: undefined; exhausted: false };

/**
 * Searches the orders in which the jobs could be placed, each at its earliest start that breaks no rule
 * (the serial schedule), depth first. That is complete: if a plan places them all, moving each job as
 * early as the rules let it gives one where no job can start earlier without moving another (an active
 * plan), and placing its jobs by start in that order, each at its earliest start, rebuilds it, since a
 * job could only start earlier there by overlapping jobs that start after it, which the rules counted in
 * that plan too. Hence only orders whose starts do not decrease are followed, and a branch ends as soon
 * as one job left has no start in its window: what is placed only takes room. `nodes` bounds the jobs
 * placed in all. The timeline is left as it was.
 */
export function searchPlacements(timeline: HostTimeline, jobs: readonly Prepared[], nodes: number): SearchResult {
  const todo = [...jobs].sort((a, b) => a.rank - b.rank);
  const placed = new Map<Prepared, number>();
  let budget = nodes;
  const visit = (minStart: number): boolean | undefined => {
    if (placed.size === todo.length) return true;
    const starts: [Prepared, number][] = [];
    for (const p of todo) {
      if (placed.has(p)) continue;
      const start = timeline.earliestStart(p.need, p.job.durationMs, p.readyAt, p.latestStart);
      if (start === undefined) return false;
      starts.push([p, start]);
    }
    let complete = true;
    for (const [p, start] of starts) {
      if (start < minStart) continue;
      if (budget-- <= 0) return undefined;
      timeline.add(p.need, start, start + p.job.durationMs, true);
      placed.set(p, start);
      const result = visit(start);
      if (result) return true;
      timeline.remove(p.need, start, start + p.job.durationMs, true);
      placed.delete(p);
      if (result === undefined) complete = false;
      if (!complete) break;
    }
    return complete ? false : undefined;
  };
  const result = visit(-Infinity);
  if (!result) return { found: undefined, exhausted: result === false };
  // Leaves the timeline as it was: the caller places what it keeps.
  for (const [p, start] of placed) timeline.remove(p.need, start, start + p.job.durationMs, true);
  return { found: placed };
}

/**
 * How the planner's steps compare plans (planner.ts, plan-favour-late.ts, plan-repair.ts): first by the
 * jobs left out for room, then by how soon the host clears the work that was ready. Pure.
 */
import type { Plan, Prepared } from './types';

export const noRoom = (plan: Plan) => plan.unplaced.filter((u) => u.reason === 'no-room').length;

/** Whether `a` leaves fewer jobs out for room than `b`, or as many and has a smaller backlog(). */
export function better(a: Plan, b: Plan, order: readonly Prepared[]): boolean {
  const fewer = noRoom(a) - noRoom(b);
  return fewer < 0 || (fewer === 0 && backlog(a, order) < backlog(b, order));
}

/**
 * How long the host takes to clear the work that was ready, summed over the jobs' ready times: at each,
 * the time until every placed job ready by then has ended. A long job left to the end of the night counts
 * at every ready time before it.
 */
function backlog(plan: Plan, order: readonly Prepared[]): number {
  const readyAt = new Map(order.map((p) => [p.job.id, p.readyAt]));
  const slots = [...plan.slots].sort((a, b) => readyAt.get(a.id)! - readyAt.get(b.id)!);
  let total = 0;
  let end = -Infinity;
  for (let i = 0; i < slots.length; i++) {
    end = Math.max(end, slots[i].end);
    const r = readyAt.get(slots[i].id)!;
    if (i + 1 === slots.length || readyAt.get(slots[i + 1].id)! !== r) total += end - r;
  }
  return total;
}

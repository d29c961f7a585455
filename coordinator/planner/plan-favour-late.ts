/**
 * The planner's favour-late step (planner.ts), a hill climb: the jobs that end the plan latest among
 * those it started late are favoured one at a time (their openings go first in the phases, vm-jobs.ts),
 * and a change is kept only when the plan gets better (plan-score.ts): fewer jobs left out for room, or
 * as many and the work that was ready cleared sooner. Pure.
 *
 * Why: the phases serve the longest jobs first, which is what keeps a phase's tokens busy to its end, but a
 * long job of a VM with hourly jobs can only start right after one of them, and those wait for a token
 * with the rest; hour after hour its opening passes and it ends the night hours late. Favouring every such
 * job at once costs others their place on a night with little room to spare; favouring the one that ends
 * the plan, checking, and going on from the better plan does not.
 */
import { better, noRoom } from './plan-score';
import type { Plan, Prepared } from './types';

/** The phases, then the checks and the serial schedule (the planner's complete()), favouring these job ids. */
export type Phasing = (favoured: ReadonlySet<string>) => Plan;
/** The repair step on a plan found with these favoured jobs (plan-repair.ts). */
export type Repair = (plan: Plan, favoured: ReadonlySet<string>) => Plan;

/**
 * A try runs the phases on the whole host, so the tries are bounded by the jobs they plan in all: a host's
 * day of 450 jobs gets 13 tries, one of 10,000 jobs none (a try would cost as much as the plan itself);
 * and a small host gets at most FAVOUR_LATE_TRIES.
 */
export const FAVOUR_LATE_WORK_JOBS = 6_000;
export const FAVOUR_LATE_TRIES = 16;

/** A job that started this long after its ready time is a candidate. */
const LATE_MS = 60 * 60_000;

/**
 * Starting from `start` (a plan and the jobs favoured to find it), tries favouring each late job too, the
 * latest-ending first; the first that makes the plan better() is kept, and the candidates are read again from the new
 * plan. A try is repaired only if it leaves more jobs out than the plan so far (the repair is what such a
 * try needs to win, and it is the costly part); if it still does, a second try favours those jobs too.
 * Returns the best plan.
 */
export function favourLateJobs(
  order: readonly Prepared[],
  start: { plan: Plan; favoured: ReadonlySet<string> },
  phasing: Phasing,
  repair: Repair,
): Plan {
  let { plan } = start;
  const placeable = Math.max(1, order.filter((p) => !p.unplaceable).length);
  let tries = Math.min(FAVOUR_LATE_TRIES, Math.floor(FAVOUR_LATE_WORK_JOBS / placeable));
  const readyAt = new Map(order.map((p) => [p.job.id, p.readyAt]));
  const rank = new Map(order.map((p) => [p.job.id, p.rank]));
  let favoured = start.favoured;
  const tried = new Set<string>();
  /**
   * The plan with these jobs favoured, repaired if it leaves more jobs out than the plan so far: by the
   * whole repair step, as the starting plans are. On the storm bench's first 60 nights that places 3 more
   * runs than one repair try (seed 6's `vm-11/files@01:00` among them; seed 47 ends at 1.11× its bound
   * instead of 1.18×), for plans of 450 jobs that take up to about 2.8 s instead of 0.7 s when runs are
   * left out, on the planning thread (plan-worker.ts), not on the coordinator's event loop.
   */
  const attempt = (ids: ReadonlySet<string>) => {
    tries--;
    const trial = phasing(ids);
    return noRoom(trial) > noRoom(plan) ? repair(trial, ids) : trial;
  };
  for (let improved = true; improved && tries > 0;) {
    improved = false;
    const late = plan.slots.filter(
      (s) => s.start - readyAt.get(s.id)! > LATE_MS && !tried.has(s.id) && !favoured.has(s.id),
    );
    late.sort((a, b) => b.end - a.end || rank.get(a.id)! - rank.get(b.id)!);
    for (const { id } of late) {
      if (tries <= 0) break;
      tried.add(id);
      let ids = new Set(favoured).add(id);
      let trial = attempt(ids);
      if (noRoom(trial) > noRoom(plan) && tries > 0) {
        // Favoured, it took the room of others: favour them too.
        const more = new Set(ids);
        for (const u of trial.unplaced) if (u.reason === 'no-room') more.add(u.id);
        const second = attempt(more);
        if (better(second, trial, order)) [trial, ids] = [second, more];
      }
      if (better(trial, plan, order)) {
        [plan, favoured] = [trial, ids];
        improved = true;
        break;
      }
    }
  }
  return plan;
}

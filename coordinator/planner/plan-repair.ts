/**
 * The planner's repair step (planner.ts): a job left out for want of room is pinned at a start its VM's
 * other jobs allow, the VM's other windows are narrowed to the side of it they can still reach, and the
 * host is planned again around it. Pure.
 *
 * Why it is needed: the phases and the serial schedule place jobs by deadline, so a VM's short, tight
 * jobs (hourly ones) take their slots first, anywhere in their windows, and may leave no gap long enough
 * for a long job of the same VM: a 105-minute file backup between two hourly jobs of 5 minutes fits only
 * if the first runs in the first minutes of its hour and the second in the last minutes of its own.
 * Pinned first, the long job holds its gap, and the phases place everything else around it.
 */
import { noRoom } from './plan-score';
import type { Plan, PlanInput, Prepared } from './types';

/** Plans the host again with these jobs (windows possibly narrowed) held at these starts. */
export type Replan = (order: readonly Prepared[], pinned: ReadonlyMap<Prepared, number>) => Plan;

/**
 * A try plans the whole host again, so the tries are bounded by the jobs they plan in all: a host's day
 * of 450 jobs gets 20 tries (about 10 ms each here), one of 10,000 jobs gets none (a try would cost as
 * much as the plan itself, about half a second).
 */
export const REPAIR_WORK_JOBS = 9_000;

/**
 * Without a bound per job, the first job left out can spend every try (8: chosen on the storm bench's
 * first 40 nights, against 4, 6, 12, 16 and none).
 */
const TRIES_PER_JOB = 8;

/**
 * Once a start places the job, this many earlier ones are still tried: a job placed later than it could
 * be makes the night longer (storm bench, seed 16: 1.13× its lower bound with one more try, 1.08× with 3).
 */
const EARLIER_TRIES = 3;

/** Around each job of the VM: right after it, or right before it, and up to this many start gaps later or earlier. */
const GAP_STEPS = 2;

/**
 * Tries, for each job the plan left out for room (in planning order, each once), starts right after or
 * right before each other job of its VM whose window meets its own, latest first (the night's first hours
 * are its busiest), up to TRIES_PER_JOB of them. A try succeeds when the new plan places the job, keeps
 * every earlier pin, and leaves fewer jobs out for room than the best plan so far (no more than the
 * success before it); after a success, EARLIER_TRIES more are made, and the earliest success is taken.
 * Returns the best plan (on narrowed windows: the caller rebuilds it on the jobs as given), or undefined
 * if none was taken.
 */
export function repairLeftOut(
  order: readonly Prepared[],
  input: PlanInput,
  plan: Plan,
  replan: Replan,
): Plan | undefined {
  const byId = new Map(order.map((p) => [p.job.id, p]));
  const placeable = order.filter((p) => !p.unplaceable);
  let tries = Math.floor(REPAIR_WORK_JOBS / Math.max(1, placeable.length));
  const gap = input.host.minStartGapMs;
  /** The pins taken so far, and the windows they narrowed, by job id. */
  let pins = new Map<string, number>();
  let windows = new Map<string, Window>();
  let best: Plan | undefined;
  const tried = new Set<string>();
  const windowOf = (p: Prepared): Window => windows.get(p.job.id) ?? p;

  const attempt = (job: Prepared): boolean => {
    const d = job.job.durationMs;
    const mates = placeable.filter(
      (q) =>
        q !== job &&
        q.need.vm === job.need.vm &&
        q.job.earliestStart < job.job.windowEnd &&
        job.job.earliestStart < q.job.windowEnd,
    );
    const candidates = new Set([job.readyAt]);
    for (const q of mates) {
      const w = windowOf(q);
      for (let k = 0; k <= GAP_STEPS; k++) {
        candidates.add(w.readyAt + q.job.durationMs + k * gap);
        candidates.add(w.latestStart - d - k * gap);
      }
    }
    const starts = [...candidates].filter((t) => t >= job.readyAt && t <= job.latestStart).sort((a, b) => b - a);
    let own = TRIES_PER_JOB;
    /** The earliest start that placed the job so far. */
    let taken: { plan: Plan; pins: Map<string, number>; windows: Map<string, Window> } | undefined;
    for (const t of starts) {
      if (tries <= 0 || own <= 0) break;
      const narrowed = narrow(mates, t, d, pins, windowOf);
      if (!narrowed) continue;
      tries--;
      own--;
      const nextPins = new Map(pins).set(job.job.id, t);
      const nextWindows = new Map([...windows, ...narrowed]);
      const copies = order.map((p) => {
        const w = nextWindows.get(p.job.id);
        return w ? { ...p, ...w } : p;
      });
      const pinned = new Map<Prepared, number>();
      for (const p of copies) {
        const start = nextPins.get(p.job.id);
        if (start !== undefined) pinned.set(p, start);
      }
      const next = replan(copies, pinned);
      const placed = new Map(next.slots.map((s) => [s.id, s.start]));
      const fewer = taken ? noRoom(next) <= noRoom(taken.plan) : noRoom(next) < noRoom(best ?? plan);
      if ([...nextPins].every(([id, start]) => placed.get(id) === start) && fewer) {
        taken = { plan: next, pins: nextPins, windows: nextWindows };
        own = Math.min(own, EARLIER_TRIES);
      }
    }
    if (!taken) return false;
    ({ plan: best, pins, windows } = taken);
    return true;
  };

  for (let progress = true; progress && tries > 0;) {
    progress = false;
    for (const u of (best ?? plan).unplaced) {
      if (u.reason !== 'no-room' || tried.has(u.id)) continue;
      tried.add(u.id);
      if (attempt(byId.get(u.id)!)) {
        progress = true;
        break;
      }
    }
  }
  return best;
}

interface Window {
  readyAt: number;
  latestStart: number;
}

/**
 * With a job of the VM held over [t, t + d): the windows of its other jobs that can now only run before
 * it or only after it, narrowed to that side; undefined if one of them can run on neither side, or a
 * pinned one overlaps it. A job that can run on both sides keeps its window: the VM rule keeps it clear.
 * Narrowing drops only starts that would overlap the pinned job, so a plan keeping the pin loses nothing.
 */
function narrow(
  mates: readonly Prepared[],
  t: number,
  d: number,
  pins: ReadonlyMap<string, number>,
  windowOf: (p: Prepared) => Window,
): Map<string, Window> | undefined {
  const narrowed = new Map<string, Window>();
  for (const q of mates) {
    const pin = pins.get(q.job.id);
    if (pin !== undefined) {
      if (pin < t + d && pin + q.job.durationMs > t) return undefined;
      continue;
    }
    const w = windowOf(q);
    const before = w.readyAt + q.job.durationMs <= t;
    const after = w.latestStart >= t + d;
    if (!before && !after) return undefined;
    if (!before) narrowed.set(q.job.id, { readyAt: Math.max(w.readyAt, t + d), latestStart: w.latestStart });
    else if (!after)
      narrowed.set(q.job.id, { readyAt: w.readyAt, latestStart: Math.min(w.latestStart, t - q.job.durationMs) });
  }
  return narrowed;
}

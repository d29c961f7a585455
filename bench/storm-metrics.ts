/**
 * The storm benchmark's arithmetic: how uncoordinated backups run when each starts at its cron time (a
 * fluid model of the shared disk), and the figures reported for a set of runs, planned or simulated,
 * with the lower bound the night's makespan is measured against.
 */
import type { PlanHost } from '../coordinator/planner/types';
import type { ScenarioJob } from './storm-scenario';

/** A job as it ran (simulated) or is planned to run. */
export interface Run {
  job: ScenarioJob;
  start: number;
  end: number;
}

/**
 * Every job starts at its cron time and reads at its declared rate; when together they ask the disks for
 * more than `diskBytesPerSec`, each gets the same fraction of what it asks (processor sharing), so all
 * of them last longer. Only the disks are shared in this model: CPU contention would only add to it.
 */
export function simulateUncoordinated(jobs: readonly ScenarioJob[], diskBytesPerSec: number): Run[] {
  return simulateShared(jobs, () => ['disks'], new Map([['disks', diskBytesPerSec]]));
}

/**
 * The same with several shared resources (a host's disks, a backup target that many hosts write to): each
 * job uses the `pools` named for it, and runs at its declared rate times the smallest share it gets in
 * any of them (each pool shares what it delivers in proportion to what its jobs ask).
 */
export function simulateShared(
  jobs: readonly ScenarioJob[],
  pools: (job: ScenarioJob) => readonly string[],
  capacity: ReadonlyMap<string, number>,
): Run[] {
  const pending = [...jobs].sort((a, b) => a.earliestStart - b.earliestStart);
  const active: { job: ScenarioJob; pools: readonly string[]; start: number; bytesLeft: number }[] = [];
  const runs: Run[] = [];
  let next = 0;
  let t = pending[0]?.earliestStart ?? 0;
  while (next < pending.length || active.length > 0) {
    while (next < pending.length && pending[next].earliestStart <= t) {
      const job = pending[next++];
      active.push({ job, pools: pools(job), start: t, bytesLeft: (job.cost.ioBytesPerSec * job.durationMs) / 1000 });
    }
    const asked = new Map<string, number>();
    for (const a of active) for (const p of a.pools) asked.set(p, (asked.get(p) ?? 0) + a.job.cost.ioBytesPerSec);
    const share = (p: string) => Math.min(1, capacity.get(p)! / asked.get(p)!);
    const bytesPerMs = (a: (typeof active)[number]) =>
      (a.job.cost.ioBytesPerSec * Math.min(1, ...a.pools.map(share))) / 1000;
    let step = next < pending.length ? pending[next].earliestStart - t : Infinity;
    for (const a of active) step = Math.min(step, a.bytesLeft / bytesPerMs(a));
    t += step;
    for (let i = active.length - 1; i >= 0; i--) {
      const a = active[i];
      a.bytesLeft -= bytesPerMs(a) * step;
      if (a.bytesLeft <= 1e-6 * a.job.cost.ioBytesPerSec) {
        runs.push({ job: a.job, start: a.start, end: t });
        active.splice(i, 1);
      }
    }
  }
  return runs;
}

export interface Figures {
  jobs: number;
  /** Jobs that run (all, uncoordinated) or have a slot (Headroom). */
  run: number;
  /** Pairs of a GUEST and a HYPERVISOR run that overlap in time, and the minutes when both kinds run. */
  guestHypervisorOverlapPairs: number;
  guestHypervisorOverlapMinutes: number;
  /** Pairs of runs of one VM that overlap. */
  sameVmOverlapPairs: number;
  peakConcurrent: number;
  /** Sum of the declared I/O cost of the runs at the busiest instant, bytes/s. */
  peakIoDemandBytesPerSec: number;
  peakCpuDemandPercent: number;
  /** Minutes during which the runs' declared I/O or CPU is above the host's backup budget. */
  overBudgetMinutes: number;
  /** Most starts within one minute. */
  maxStartsPerMinute: number;
  /** Share of all jobs that started at or after their cron time and finished by their window's end. */
  insideWindowShare: number;
  night: NightFigures;
}

export interface NightFigures {
  /** The night's batch: jobs whose cron time is from 22:00 to 06:00. */
  jobs: number;
  /** From the first cron time of the batch to the end of its last run. */
  makespanMs: number;
  /** Total work ÷ host budget: Σ duration × declared I/O ÷ the I/O budget (the ladder's first rung). */
  workOverBudgetMs: number;
  /** The sharpest bound, every constraint included (the ladder's last rung). */
  lowerBoundMs: number;
  /**
   * boundLadderMs(): the bounds between the two. All of them over the jobs that run (a plan's left-out
   * jobs do not count), so they bound every plan that runs at least those.
   */
  ladder: BoundLadder;
}

export function figures(
  all: readonly ScenarioJob[],
  runs: readonly Run[],
  host: PlanHost,
  night: readonly ScenarioJob[],
): Figures {
  const guests = runs.filter((r) => r.job.kind === 'GUEST');
  const hypervisors = runs.filter((r) => r.job.kind === 'HYPERVISOR');
  const overlaps = (a: Run, b: Run) => a.start < b.end && b.start < a.end;
  let pairs = 0;
  for (const h of hypervisors) for (const g of guests) if (overlaps(g, h)) pairs++;
  let sameVm = 0;
  const byVm = new Map<string, Run[]>();
  for (const r of runs) byVm.set(r.job.vm, [...(byVm.get(r.job.vm) ?? []), r]);
  for (const list of byVm.values()) {
    for (let i = 0; i < list.length; i++)
      for (let j = i + 1; j < list.length; j++) if (overlaps(list[i], list[j])) sameVm++;
  }

  // One sweep over starts and ends (an end before a start at the same instant: back to back is no overlap).
  const events = runs.flatMap((r) => [
    { at: r.start, sign: 1, r },
    { at: r.end, sign: -1, r },
  ]);
  events.sort((a, b) => a.at - b.at || a.sign - b.sign);
  let running = 0;
  let io = 0;
  let cpu = 0;
  const count = { GUEST: 0, HYPERVISOR: 0 };
  const peak = { running: 0, io: 0, cpu: 0 };
  let bothSince: number | undefined;
  let bothMs = 0;
  let overSince: number | undefined;
  let overMs = 0;
  for (const e of events) {
    running += e.sign;
    io += e.sign * e.r.job.cost.ioBytesPerSec;
    cpu += e.sign * e.r.job.cost.cpuPercent;
    count[e.r.job.kind] += e.sign;
    peak.running = Math.max(peak.running, running);
    peak.io = Math.max(peak.io, io);
    peak.cpu = Math.max(peak.cpu, cpu);
    const both = count.GUEST > 0 && count.HYPERVISOR > 0;
    if (both && bothSince === undefined) bothSince = e.at;
    if (!both && bothSince !== undefined) {
      bothMs += e.at - bothSince;
      bothSince = undefined;
    }
    const over = io > host.budget.ioBytesPerSec || cpu > host.budget.cpuPercent;
    if (over && overSince === undefined) overSince = e.at;
    if (!over && overSince !== undefined) {
      overMs += e.at - overSince;
      overSince = undefined;
    }
  }

  const starts = runs.map((r) => r.start).sort((a, b) => a - b);
  let maxPerMinute = 0;
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (starts[j] <= starts[i] - 60_000) j++;
    maxPerMinute = Math.max(maxPerMinute, i - j + 1);
  }

  const inside = runs.filter((r) => r.start >= r.job.earliestStart && r.end <= r.job.windowEnd).length;
  const nightIds = new Set(night.map((j) => j.id));
  const t0 = Math.min(...night.map((j) => j.earliestStart));
  // The bound of the jobs that run: one counting the jobs a plan left out bounds plans that place them, and
  // a plan leaving some out could end below it.
  const ran = new Set(runs.map((r) => r.job.id));
  const ladder = boundLadderMs(
    night.filter((j) => ran.has(j.id)),
    host,
    all.filter((j) => ran.has(j.id)),
  );
  const nightEnd = Math.max(...runs.filter((r) => nightIds.has(r.job.id)).map((r) => r.end));
  return {
    jobs: all.length,
    run: runs.length,
    guestHypervisorOverlapPairs: pairs,
    guestHypervisorOverlapMinutes: bothMs / 60_000,
    sameVmOverlapPairs: sameVm,
    peakConcurrent: peak.running,
    peakIoDemandBytesPerSec: peak.io,
    peakCpuDemandPercent: peak.cpu,
    overBudgetMinutes: overMs / 60_000,
    maxStartsPerMinute: maxPerMinute,
    insideWindowShare: inside / all.length,
    night: {
      jobs: night.length,
      makespanMs: nightEnd - t0,
      workOverBudgetMs: ladder.cumulativeMs[0],
      lowerBoundMs: ladder.cumulativeMs[BOUND_STEPS.length - 1],
      ladder,
    },
  };
}

/** The constraints a bound may take into account, in the order the ladder adds them. */
export const BOUND_STEPS = [
  'I/O budget',
  'CPU budget',
  'per-kind caps',
  'guest/hypervisor exclusion',
  'cron times',
  'VM chains, start gaps',
  'later jobs due in it',
] as const;

export type BoundStep = (typeof BOUND_STEPS)[number];

export interface BoundLadder {
  /**
   * Lower bounds on the batch's makespan, each taking one more constraint into account than the one
   * before (BOUND_STEPS, in order): the first is the literal total I/O work ÷ I/O budget, the last the
   * sharpest bound, with every rule of the host. The increase from one to the next is what that
   * constraint adds on top of the ones before it (another order would share the gap out differently).
   */
  cumulativeMs: number[];
  /** The bound with the I/O budget and each constraint alone, in the same order (the first is the literal bound). */
  aloneMs: number[];
}

/**
 * @param jobs the batch (the night's jobs)
 * @param day every job of the plan, the batch's among them: those released after the batch's first cron time
 *   and due before its bound count too, with 'later jobs due in it' (dueWithinMs)
 */
export function boundLadderMs(
  jobs: readonly ScenarioJob[],
  host: PlanHost,
  day: readonly ScenarioJob[] = jobs,
): BoundLadder {
  return {
    cumulativeMs: BOUND_STEPS.map((_, i) => dueWithinMs(jobs, day, host, new Set(BOUND_STEPS.slice(0, i + 1)))),
    aloneMs: BOUND_STEPS.map((step) => dueWithinMs(jobs, day, host, new Set([BOUND_STEPS[0], step]))),
  };
}

/**
 * boundMs(), and with 'later jobs due in it' the jobs of the day that are not the batch's but whose windows
 * lie inside the batch's makespan (the hourly jobs of 06:00 to 09:00, when the night ends after 09:00),
 * since a plan placing every job runs them in it too. Which those are depends on the makespan, so the bound
 * B is raised until it holds for the jobs due by t0 + B: f(T) = boundMs(batch and the jobs due by t0 + T)
 * never decreases as T grows; a plan of makespan M places the jobs due by t0 + M inside it, so f(M) ≤ M;
 * starting from f(0) ≤ f(M) ≤ M, each B = f(B before) stays ≤ M, so the B it stops at is ≤ M too.
 */
function dueWithinMs(
  jobs: readonly ScenarioJob[],
  day: readonly ScenarioJob[],
  host: PlanHost,
  used: ReadonlySet<BoundStep>,
): number {
  let bound = boundMs(jobs, host, used);
  if (!used.has('later jobs due in it')) return bound;
  const batch = new Set(jobs);
  const t0 = Math.min(...jobs.map((j) => j.earliestStart));
  const later = day.filter((j) => !batch.has(j) && j.earliestStart >= t0);
  for (;;) {
    const due = later.filter((j) => j.windowEnd <= t0 + bound);
    const next = boundMs([...jobs, ...due], host, used);
    if (next <= bound) return bound;
    bound = next;
  }
}

/**
 * A lower bound under the constraints `used` (the I/O budget always counts). With the cron times, for every cron
 * time r the jobs released at r or later all run after r, so the batch takes at least (r − first cron
 * time) plus the time they need, and no job ends before its cron time plus its duration; without them,
 * every job counts from the first cron time. The time the jobs need is the largest of:
 *  - their work ÷ the I/O budget, and ÷ the CPU budget, over both kinds together; and with the caps, each
 *    kind's total duration ÷ its cap;
 *  - with the exclusion, the two kinds never run together: the time GUEST jobs run plus the time
 *    HYPERVISOR jobs run, each at least the largest of the above for its kind alone;
 *  - with VM chains and start gaps, the longest chain of one VM (its jobs run one at a time) and the gaps between their
 *    starts ((n − 1) × minStartGapMs).
 */
function boundMs(jobs: readonly ScenarioJob[], host: PlanHost, used: ReadonlySet<BoundStep>): number {
  const use = (step: BoundStep) => used.has(step);
  const t0 = Math.min(...jobs.map((j) => j.earliestStart));
  const releases = use('cron times') ? [...new Set(jobs.map((j) => j.earliestStart))].sort((a, b) => a - b) : [t0];
  let bound = use('cron times') ? Math.max(...jobs.map((j) => j.earliestStart + j.durationMs - t0)) : 0;
  for (const r of releases) {
    const later = jobs.filter((j) => j.earliestStart >= r);
    /** The time these jobs need for the budgets and, if used, the caps. */
    const time = (of: readonly ScenarioJob[]) => {
      const sum = (f: (j: ScenarioJob) => number) => of.reduce((s, j) => s + j.durationMs * f(j), 0);
      const caps = (['GUEST', 'HYPERVISOR'] as const).map((kind) => {
        const cap = kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens;
        return of.filter((j) => j.kind === kind).reduce((s, j) => s + j.durationMs, 0) / cap;
      });
      return Math.max(
        sum((j) => j.cost.ioBytesPerSec) / host.budget.ioBytesPerSec,
        use('CPU budget') ? sum((j) => j.cost.cpuPercent) / host.budget.cpuPercent : 0,
        use('per-kind caps') ? Math.max(...caps) : 0,
      );
    };
    let work = use('guest/hypervisor exclusion')
      ? time(later.filter((j) => j.kind === 'GUEST')) + time(later.filter((j) => j.kind === 'HYPERVISOR'))
      : time(later);
    if (use('VM chains, start gaps')) {
      const chains = new Map<string, number>();
      for (const j of later) chains.set(j.vm, (chains.get(j.vm) ?? 0) + j.durationMs);
      work = Math.max(work, Math.max(...chains.values()), (later.length - 1) * host.minStartGapMs);
    }
    bound = Math.max(bound, r - t0 + work);
  }
  return bound;
}

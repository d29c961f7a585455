/**
 * The storm benchmark's arithmetic: how uncoordinated backups run when each starts at its cron time (a
 * fluid model of the shared disk), and the figures reported for a set of runs, planned or simulated,
 * with the lower bound the night's makespan is measured against.
 */
import type { PlanHost } from '../coordinator/domain/planner';
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
  const pending = [...jobs].sort((a, b) => a.earliestStart - b.earliestStart);
  const active: { job: ScenarioJob; start: number; bytesLeft: number }[] = [];
  const runs: Run[] = [];
  let next = 0;
  let t = pending[0]?.earliestStart ?? 0;
  while (next < pending.length || active.length > 0) {
    while (next < pending.length && pending[next].earliestStart <= t) {
      const job = pending[next++];
      active.push({ job, start: t, bytesLeft: (job.cost.ioBytesPerSec * job.durationMs) / 1000 });
    }
    const asked = active.reduce((sum, a) => sum + a.job.cost.ioBytesPerSec, 0);
    const share = asked > diskBytesPerSec ? diskBytesPerSec / asked : 1;
    const bytesPerMs = (a: (typeof active)[number]) => (a.job.cost.ioBytesPerSec * share) / 1000;
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
  /** Total work ÷ host budget: Σ duration × declared I/O ÷ the I/O budget. */
  workOverBudgetMs: number;
  /** The sharper bound, see nightLowerBoundMs. */
  lowerBoundMs: number;
}

export function figures(all: readonly ScenarioJob[], runs: readonly Run[], host: PlanHost, night: readonly ScenarioJob[]): Figures {
  const guests = runs.filter((r) => r.job.kind === 'GUEST');
  const hypervisors = runs.filter((r) => r.job.kind === 'HYPERVISOR');
  const overlaps = (a: Run, b: Run) => a.start < b.end && b.start < a.end;
  let pairs = 0;
  for (const h of hypervisors) for (const g of guests) if (overlaps(g, h)) pairs++;
  let sameVm = 0;
  const byVm = new Map<string, Run[]>();
  for (const r of runs) byVm.set(r.job.vm, [...(byVm.get(r.job.vm) ?? []), r]);
  for (const list of byVm.values()) {
    for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) if (overlaps(list[i], list[j])) sameVm++;
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
      workOverBudgetMs: night.reduce((sum, j) => sum + j.durationMs * j.cost.ioBytesPerSec, 0) / host.budget.ioBytesPerSec,
      lowerBoundMs: nightLowerBoundMs(night, host),
    },
  };
}

/**
 * A lower bound on the time from the batch's first cron time to the end of its last job under the host's
 * rules. For every cron time r, the jobs released at r or later all run after r, so the batch takes at
 * least (r − first cron time) plus the largest of:
 *  - the time GUEST jobs run plus the time HYPERVISOR jobs run (the two never overlap), each at least its
 *    work ÷ the I/O budget, its work ÷ the CPU budget and its total duration ÷ its kind's cap;
 *  - the longest chain of one VM (its jobs run one at a time);
 *  - the gaps between their starts ((n − 1) × minStartGapMs);
 * and no job ends before its cron time plus its duration.
 */
export function nightLowerBoundMs(jobs: readonly ScenarioJob[], host: PlanHost): number {
  const t0 = Math.min(...jobs.map((j) => j.earliestStart));
  const releases = [...new Set(jobs.map((j) => j.earliestStart))].sort((a, b) => a - b);
  let bound = Math.max(...jobs.map((j) => j.earliestStart + j.durationMs - t0));
  for (const r of releases) {
    const later = jobs.filter((j) => j.earliestStart >= r);
    const kindTime = (kind: ScenarioJob['kind'], cap: number) => {
      const of = later.filter((j) => j.kind === kind);
      const sum = (f: (j: ScenarioJob) => number) => of.reduce((s, j) => s + j.durationMs * f(j), 0);
      return Math.max(sum((j) => j.cost.ioBytesPerSec) / host.budget.ioBytesPerSec, sum((j) => j.cost.cpuPercent) / host.budget.cpuPercent, sum(() => 1) / cap);
    };
    const chains = new Map<string, number>();
    for (const j of later) chains.set(j.vm, (chains.get(j.vm) ?? 0) + j.durationMs);
    const work = Math.max(
      kindTime('GUEST', host.maxGuestTokens) + kindTime('HYPERVISOR', host.maxHypervisorTokens),
      Math.max(...chains.values()),
      (later.length - 1) * host.minStartGapMs,
    );
    bound = Math.max(bound, r - t0 + work);
  }
  return bound;
}

/**
 * bench:storm's cluster scenario: 8 hosts of 25 VMs each (the single host's mix, storm-scenario.ts, one
 * seed per host) whose hypervisor backups (vzdump to one Proxmox Backup Server datastore) all write to one
 * shared target, limited to a few backups and an I/O budget at once. Three ways to run the night:
 *  - uncoordinated: every backup at its cron time, each host's disks and the target each shared in
 *    proportion to what is asked of them (storm-metrics.ts simulateShared): the target delivers its I/O
 *    budget in all, so an overloaded target slows every backup on it;
 *  - per-host Headroom: each host planned alone by its own rules, as one coordinator per host does: nothing
 *    holds the target's limits across hosts;
 *  - cluster Headroom: the hosts planned together with the target's limits held across them
 *    (planner/plan-hosts.ts), as the lessor of a cluster's leader admits them.
 * Figures on the target (peak concurrent backups, peak I/O demand), per host (guest×hypervisor overlaps),
 * and for the night (runs inside their windows, runs left out, makespan). Pure computation.
 */
import type { TargetLimits } from '../coordinator/domain/targets';
import { planHost, planHosts } from '../coordinator/planner';
import type { Plan, PlanInput } from '../coordinator/planner/types';
import { type Run, figures, simulateShared } from './storm-metrics';
import { DISK_BYTES_PER_SEC_PER_50_VMS, MIDNIGHT, PLAN_NOW, type ScenarioJob, scenario } from './storm-scenario';

const HOUR = 3_600_000;
const MB = 1_000_000;
export const CLUSTER_HOSTS = 8;
export const CLUSTER_VMS_PER_HOST = 25;
/**
 * The datastore's limits: 4 backups and 500 MB/s at once (a PBS on 10 GbE, its disks the narrower part).
 * Enough to back up the 200 VMs in their 8-hour window one after another, not all hosts at once.
 */
export const CLUSTER_TARGET: TargetLimits = { name: 'pbs', maxConcurrent: 6, ioBytesPerSec: 750 * MB };

interface ClusterHost {
  name: string;
  input: Omit<PlanInput, 'targets'>;
  jobs: ScenarioJob[];
}

export interface TargetFigures {
  /** Runs that write to the target, and of them those run or placed. */
  targetJobs: number;
  targetRuns: number;
  peakConcurrentOnTarget: number;
  /** Sum of the declared I/O of the target's runs at the busiest instant, bytes/s. */
  peakIoOnTargetBytesPerSec: number;
  /** Minutes with the target over its concurrency or its I/O budget. */
  minutesOverTarget: number;
  /** Pairs of a GUEST and a HYPERVISOR run overlapping on one host, summed over the hosts. */
  guestHypervisorOverlapPairs: number;
  /** Share of all jobs of the cluster that start at or after their cron time and end by their window's end. */
  insideWindowShare: number;
  leftOut: number;
  /** From 22:00 to the end of the last run of the night's batch (cron times 22:00 to 06:00), any host. */
  nightMakespanMs: number;
}

export interface ClusterFigures {
  hosts: number;
  vmsPerHost: number;
  jobs: number;
  target: TargetLimits;
  uncoordinated: TargetFigures;
  perHost: TargetFigures;
  cluster: TargetFigures;
  /** Planning every host together, wall time. */
  clusterPlanningMs: number;
}

/** The cluster: each host the single host's scenario for 25 VMs, its own seed; its hypervisor jobs on the target. */
export function clusterScenario(seed: number, budgetMb: number): ClusterHost[] {
  return Array.from({ length: CLUSTER_HOSTS }, (_, h) => {
    const name = `pve${h + 1}`;
    const { host, jobs } = scenario(CLUSTER_VMS_PER_HOST, seed + h, budgetMb);
    const own = jobs.map((j): ScenarioJob => ({
      ...j,
      id: `${name}/${j.id}`,
      vm: `${name}/${j.vm}`,
      ...(j.kind === 'HYPERVISOR' ? { target: CLUSTER_TARGET.name } : {}),
    }));
    return { name, input: { now: PLAN_NOW, host, jobs: own }, jobs: own };
  });
}

function runsOf(plan: Plan, jobs: readonly ScenarioJob[]): Run[] {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  return plan.slots.map((s) => ({ job: byId.get(s.id)!, start: s.start, end: s.end }));
}

/** The figures of one way of running the night, from each host's runs. */
function targetFigures(hosts: readonly ClusterHost[], runsByHost: readonly Run[][]): TargetFigures {
  const onTarget = runsByHost.flat().filter((r) => r.job.target === CLUSTER_TARGET.name);
  const edges = onTarget.flatMap((r) => [
    { at: r.start, n: 1, io: r.job.cost.ioBytesPerSec },
    { at: r.end, n: -1, io: -r.job.cost.ioBytesPerSec },
  ]);
  // An end before a start at the same instant: back to back is no overlap.
  edges.sort((a, b) => a.at - b.at || a.n - b.n);
  let running = 0;
  let io = 0;
  let peakRunning = 0;
  let peakIo = 0;
  let overMs = 0;
  for (let i = 0; i < edges.length; i++) {
    running += edges[i].n;
    io += edges[i].io;
    peakRunning = Math.max(peakRunning, running);
    peakIo = Math.max(peakIo, io);
    const over = running > CLUSTER_TARGET.maxConcurrent || io > CLUSTER_TARGET.ioBytesPerSec;
    if (over && i + 1 < edges.length) overMs += edges[i + 1].at - edges[i].at;
  }
  let overlaps = 0;
  let inside = 0;
  let jobs = 0;
  let nightEnd = -Infinity;
  hosts.forEach((h, i) => {
    const night = h.jobs.filter((j) => j.earliestStart >= MIDNIGHT - 2 * HOUR && j.earliestStart < MIDNIGHT + 6 * HOUR);
    const f = figures(h.jobs, runsByHost[i], h.input.host, night);
    overlaps += f.guestHypervisorOverlapPairs;
    inside += f.insideWindowShare * h.jobs.length;
    jobs += h.jobs.length;
    const ids = new Set(night.map((j) => j.id));
    for (const r of runsByHost[i]) if (ids.has(r.job.id)) nightEnd = Math.max(nightEnd, r.end);
  });
  const targetJobs = hosts.reduce((n, h) => n + h.jobs.filter((j) => j.target).length, 0);
  return {
    targetJobs,
    targetRuns: onTarget.length,
    peakConcurrentOnTarget: peakRunning,
    peakIoOnTargetBytesPerSec: peakIo,
    minutesOverTarget: overMs / 60_000,
    guestHypervisorOverlapPairs: overlaps,
    insideWindowShare: inside / jobs,
    leftOut: jobs - runsByHost.reduce((n, r) => n + r.length, 0),
    nightMakespanMs: nightEnd - (MIDNIGHT - 2 * HOUR),
  };
}

export function clusterFigures(seed: number, budgetMb: number): ClusterFigures {
  const hosts = clusterScenario(seed, budgetMb);
  const disk = (DISK_BYTES_PER_SEC_PER_50_VMS * CLUSTER_VMS_PER_HOST) / 50;
  // One simulation of the whole cluster: the target is shared by every host, each host's disks by its own jobs.
  const capacity = new Map([
    [CLUSTER_TARGET.name, CLUSTER_TARGET.ioBytesPerSec],
    ...hosts.map((h) => [h.name, disk] as [string, number]),
  ]);
  const hostOf = new Map(hosts.flatMap((h) => h.jobs.map((j) => [j.id, h.name] as const)));
  const shared = simulateShared(
    hosts.flatMap((h) => h.jobs),
    (j) => (j.target ? [hostOf.get(j.id)!, j.target] : [hostOf.get(j.id)!]),
    capacity,
  );
  const uncoordinated = hosts.map((h) => shared.filter((r) => hostOf.get(r.job.id) === h.name));
  const perHost = hosts.map((h) => runsOf(planHost(h.input), h.jobs));
  const t = process.hrtime.bigint();
  const plans = planHosts(new Map(hosts.map((h) => [h.name, h.input])), [CLUSTER_TARGET]);
  const clusterPlanningMs = Number(process.hrtime.bigint() - t) / 1e6;
  const cluster = hosts.map((h) => runsOf(plans.get(h.name)!, h.jobs));
  return {
    hosts: hosts.length,
    vmsPerHost: CLUSTER_VMS_PER_HOST,
    jobs: hosts.reduce((n, h) => n + h.jobs.length, 0),
    target: CLUSTER_TARGET,
    uncoordinated: targetFigures(hosts, uncoordinated),
    perHost: targetFigures(hosts, perHost),
    cluster: targetFigures(hosts, cluster),
    clusterPlanningMs,
  };
}

/** The report's lines for the cluster scenario. */
export function clusterReport(c: ClusterFigures): string[] {
  const mbps = (b: number) => `${Math.round(b / MB)} MB/s`;
  const hm = (ms: number) => `${Math.floor(ms / HOUR)} h ${String(Math.round((ms % HOUR) / 60_000)).padStart(2, '0')}`;
  const row = (label: string, f: (x: TargetFigures) => string) =>
    `  ${label.padEnd(36)}${f(c.uncoordinated).padEnd(18)}${f(c.perHost).padEnd(18)}${f(c.cluster)}`;
  return [
    `  cluster      ${c.hosts} hosts × ${c.vmsPerHost} VMs, ${c.jobs} jobs in 24 h; every host's hypervisor backups (vzdump) write to one`,
    `               shared target, ${c.target.name}: at most ${c.target.maxConcurrent} backups and ${mbps(c.target.ioBytesPerSec)} at once; per host the single`,
    `               host's rules scaled to 25 VMs`,
    '',
    `  ${''.padEnd(36)}${'uncoordinated'.padEnd(18)}${'per-host plans'.padEnd(18)}cluster plan`,
    row('target runs run / placed', (x) => `${x.targetRuns} of ${x.targetJobs}`),
    row('peak concurrent backups on target', (x) => String(x.peakConcurrentOnTarget)),
    row('peak I/O demand on target', (x) => mbps(x.peakIoOnTargetBytesPerSec)),
    row('minutes over the target limits', (x) => x.minutesOverTarget.toFixed(0)),
    row('guest×hypervisor overlaps (pairs)', (x) => String(x.guestHypervisorOverlapPairs)),
    row('finished inside their windows', (x) => `${(100 * x.insideWindowShare).toFixed(1)} %`),
    row('runs left out', (x) => String(x.leftOut)),
    row('night makespan (from 22:00)', (x) => hm(x.nightMakespanMs)),
    `  planning the ${c.hosts} hosts together: ${c.clusterPlanningMs.toFixed(0)} ms`,
    "  uncoordinated: simulated, every job at its cron time, each host's disks and the target delivering what they",
    '  can in proportion to what is asked. The plans: each job taking its expected duration; per-host plans are',
    "  each host's own coordinator, blind to the other hosts: on a target over its limits their runs would last longer.",
  ];
}

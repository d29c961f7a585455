/**
 * `npm run bench:storm`: the night of a simulated host with 50 VMs, (1) uncoordinated, every backup
 * starting at its cron time, and (2) as Headroom's planner plans it; then how much a small change moves
 * the plan, and how long planning 10,000 jobs takes; then a cluster of 8 hosts sharing one backup target
 * (storm-cluster.ts). Prints figures and writes them to .bench/storm.json;
 * never fails on them. Pure computation (no processes, no network), but for the planning thread the
 * event-loop figure starts.
 *
 * Two of issue 4's targets are checked here as claims that can fail, night by night:
 *  - every feasible job placed: each run left out must be proven left out (storm-left-out.ts); the ones
 *    that are not are counted and listed by id;
 *  - makespan within 10 % of the lower bound: against the sharpest bound (every rule of the host), and
 *    against the literal one (total I/O work ÷ I/O budget), with the ladder of bounds between them
 *    (storm-metrics.ts boundLadderMs) showing which constraint accounts for which part of the gap. On
 *    this host the caps (8 GUEST, 2 HYPERVISOR backups at once) hold a phase well below the 500 MB/s
 *    budget, so no plan can come near the literal bound; the scenario is left as it is, since caps below
 *    the budget are what hosts run (vzdump backs up one VM at a time by default).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TokenKind } from '../coordinator/domain/lease';
import { FAVOUR_LATE_WORK_JOBS, REPAIR_WORK_JOBS, planHost } from '../coordinator/planner';
import type { Plan, PlanInput } from '../coordinator/planner/types';
import { type LeftOutFigures, classifyLeftOut } from './storm-left-out';
import { BOUND_STEPS, type Figures, type Run, figures, simulateUncoordinated } from './storm-metrics';
import {
  DEFAULT_BUDGET_MB,
  DISK_BYTES_PER_SEC_PER_50_VMS,
  MIDNIGHT,
  PLAN_NOW,
  type ScenarioJob,
  scenario,
} from './storm-scenario';
import { ensureDirFor } from './proc-stats';
import { type LoopStall, declaredDay, eventLoopWhilePlanning } from './storm-event-loop';
import { type ClusterFigures, clusterFigures, clusterReport } from './storm-cluster';

const HOUR = 3_600_000;
const VMS = 50;
const SPEED_JOBS = 10_000;
const WARM_UP_RUNS = 5;
function parseArgs(argv: string[]): { seed: number; runs: number; nights: number; budget: number } {
  const o = { seed: 1, runs: 9, nights: 3, budget: DEFAULT_BUDGET_MB };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--seed' && Number.isSafeInteger(value)) o.seed = value;
    else if (argv[i] === '--runs' && Number.isSafeInteger(value) && value > 0) o.runs = value;
    else if (argv[i] === '--nights' && Number.isSafeInteger(value) && value > 0) o.nights = value;
    else if (argv[i] === '--budget' && Number.isSafeInteger(value) && value > 0) o.budget = value;
    else
      throw new Error(
        `usage: node dist/bench/storm.js [--seed N] [--runs N] [--nights N] [--budget MB/s per 50 VMs]   (got ${argv.slice(i, i + 2).join(' ')})`,
      );
  }
  return o;
}

/** Wall time and this process's CPU time (the machine may be shared: CPU time is what planning itself took). */
function timed(f: () => unknown): { wallMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const t = process.hrtime.bigint();
  f();
  const wallMs = Number(process.hrtime.bigint() - t) / 1e6;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 };
}

/**
 * The first call with this input (for the first input, V8 is still compiling the planner), then `runs`
 * calls after WARM_UP_RUNS untimed ones, as when the coordinator replans again and again.
 */
function timing(runs: number, f: () => unknown): Timing {
  const firstMs = timed(f).wallMs;
  for (let i = 0; i < WARM_UP_RUNS; i++) f();
  const samples = Array.from({ length: runs }, () => timed(f));
  const cpu = samples.map((x) => x.cpuMs).sort((a, b) => a - b);
  return { firstMs, ...stats(samples.map((x) => x.wallMs)), cpuMedianMs: cpu[Math.floor(cpu.length / 2)] };
}

interface Timing {
  firstMs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Median CPU time of the process over the same runs (garbage collection on other threads included). */
  cpuMedianMs: number;
}

function stats(samples: number[]): Omit<Timing, 'firstMs' | 'cpuMedianMs'> {
  const s = [...samples].sort((a, b) => a - b);
  return { medianMs: s[Math.floor(s.length / 2)], minMs: s[0], maxMs: s[s.length - 1] };
}

/** Per kind, the declared I/O of its jobs, weighted by their durations: what one of its backups spends on average. */
function meanIo(jobs: readonly ScenarioJob[]): Record<TokenKind, number> {
  const of = (kind: TokenKind) => {
    const js = jobs.filter((j) => j.kind === kind);
    return js.reduce((s, j) => s + j.durationMs * j.cost.ioBytesPerSec, 0) / js.reduce((s, j) => s + j.durationMs, 0);
  };
  return { GUEST: of('GUEST'), HYPERVISOR: of('HYPERVISOR') };
}

/** Slots of jobs present in both plans whose start changed. */
function moved(before: Plan, after: Plan, except?: string): number {
  const start = new Map(before.slots.map((s) => [s.id, s.start]));
  return after.slots.filter((s) => s.id !== except && start.has(s.id) && start.get(s.id) !== s.start).length;
}

async function main(): Promise<void> {
  const { seed, runs, nights: nightCount, budget } = parseArgs(process.argv.slice(2));
  // Other work on the machine slows the timed runs: the report shows how busy it was.
  const loadAverageBefore = os.loadavg()[0];
  const { host, jobs } = scenario(VMS, seed, budget);
  const input: PlanInput = { now: PLAN_NOW, host, jobs };
  const night = jobs.filter((j) => j.earliestStart >= MIDNIGHT - 2 * HOUR && j.earliestStart < MIDNIGHT + 6 * HOUR);

  const uncoordinatedRuns = simulateUncoordinated(jobs, DISK_BYTES_PER_SEC_PER_50_VMS);
  const planTiming = timing(runs, () => planHost(input));
  const plan = planHost(input);
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const plannedRuns: Run[] = plan.slots.map((s) => ({ job: byId.get(s.id)!, start: s.start, end: s.end }));
  const uncoordinated = figures(jobs, uncoordinatedRuns, host, night);
  const headroom = figures(jobs, plannedRuns, host, night);

  // Small changes, replanned with the previous plan: how many of the other slots move.
  const victim = jobs.find((j) => j.type === 'files')!;
  // Another file backup of the same VM at 01:00, in a 6-hour window.
  const extra: ScenarioJob = {
    ...victim,
    id: `${victim.vm}/files-extra@01:00`,
    earliestStart: MIDNIGHT + HOUR,
    windowEnd: MIDNIGHT + 7 * HOUR,
  };
  const changes = {
    'one job removed': jobs.filter((j) => j !== victim),
    'one job added': [...jobs, extra],
    'one job 50 % longer': jobs.map((j) => (j === victim ? { ...j, durationMs: Math.round(j.durationMs * 1.5) } : j)),
  };
  const stability = Object.entries(changes).map(([change, changed]) => {
    const fresh = planHost({ ...input, jobs: changed });
    const kept = planHost({ ...input, jobs: changed, previous: plan });
    return {
      change,
      movedWithPrevious: moved(plan, kept, victim.id),
      movedFromScratch: moved(plan, fresh, victim.id),
      leftOut: kept.unplaced.length,
      slots: plan.slots.length,
    };
  });

  // The same host on other nights: one seed can be lucky.
  const nights = Array.from({ length: nightCount }, (_, i) => {
    const other = scenario(VMS, seed + i, budget);
    const otherInput: PlanInput = { now: PLAN_NOW, host: other.host, jobs: other.jobs };
    const otherNight = other.jobs.filter(
      (j) => j.earliestStart >= MIDNIGHT - 2 * HOUR && j.earliestStart < MIDNIGHT + 6 * HOUR,
    );
    const otherPlan = planHost(otherInput);
    const otherById = new Map(other.jobs.map((j) => [j.id, j]));
    const f = figures(
      other.jobs,
      otherPlan.slots.map((sl) => ({ job: otherById.get(sl.id)!, start: sl.start, end: sl.end })),
      other.host,
      otherNight,
    );
    return {
      seed: seed + i,
      jobs: other.jobs.length,
      ...classifyLeftOut(otherInput, otherPlan),
      overlaps: f.guestHypervisorOverlapPairs,
      makespanRatio: f.night.makespanMs / f.night.lowerBoundMs,
      makespanOverWorkRatio: f.night.makespanMs / f.night.workOverBudgetMs,
      /** The ladder of bounds (storm-metrics.ts), × the literal bound. */
      ladderRatios: f.night.ladder.cumulativeMs.map((b) => b / f.night.workOverBudgetMs),
      aloneRatios: f.night.ladder.aloneMs.map((b) => b / f.night.workOverBudgetMs),
    };
  });

  // Speed: a host scaled up, with the same mix per VM, until it has 10,000 jobs.
  let big = scenario(VMS, seed, budget);
  for (let vms = VMS; big.jobs.length < SPEED_JOBS; vms += 50) big = scenario(vms, seed, budget);
  const bigInput: PlanInput = { now: PLAN_NOW, host: big.host, jobs: big.jobs.slice(0, SPEED_JOBS) };
  const bigTiming = timing(runs, () => planHost(bigInput));
  const bigPlan = planHost(bigInput);
  const bigLeftOut = classifyLeftOut(bigInput, bigPlan);
  const bigChanged = { ...bigInput, jobs: bigInput.jobs.slice(1) };
  const replanTiming = timing(runs, () => planHost({ ...bigChanged, previous: bigPlan }));
  const eventLoop = await eventLoopWhilePlanning(declaredDay(jobs, host, PLAN_NOW), runs);
  const cluster = clusterFigures(seed, budget);

  const targets = {
    noOverlaps: nights.every((n) => n.overlaps === 0),
    everyFeasibleJobPlaced: nights.every((n) => n.maybeFeasible === 0),
    makespanWithin10Percent: nights.every((n) => n.makespanRatio <= 1.1),
    makespanWithin10PercentOfLiteral: nights.every((n) => n.makespanOverWorkRatio <= 1.1),
    tenThousandUnderOneSecond: bigTiming.medianMs < 1000,
    clusterTargetHeld: cluster.cluster.minutesOverTarget === 0,
  };
  const result = {
    machine: {
      cores: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      node: process.version,
      loadAverageBefore,
      loadAverageAfter: os.loadavg()[0],
    },
    seed,
    scenario: {
      vms: VMS,
      jobs: jobs.length,
      nightJobs: night.length,
      host,
      diskBytesPerSec: DISK_BYTES_PER_SEC_PER_50_VMS,
      nightMeanIo: meanIo(night),
    },
    uncoordinated,
    headroom: {
      ...headroom,
      unplaced: plan.unplaced,
      leftOut: classifyLeftOut(input, plan),
      phases: plan.phases.length,
      planning: planTiming,
    },
    stability,
    nights,
    speed: {
      jobs: bigInput.jobs.length,
      vms: big.vms,
      host: big.host,
      placed: bigPlan.slots.length,
      leftOut: bigLeftOut,
      plan: bigTiming,
      replanWithPrevious: replanTiming,
      runs,
    },
    eventLoop,
    cluster,
    targets,
  };
  const out = path.resolve(__dirname, '..', '..', '.bench', 'storm.json');
  ensureDirFor(out);
  fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(report(result, out));
}

type Result = {
  machine: { cores: number; cpu?: string; node: string; loadAverageBefore: number; loadAverageAfter: number };
  seed: number;
  scenario: {
    vms: number;
    jobs: number;
    nightJobs: number;
    host: PlanInput['host'];
    diskBytesPerSec: number;
    nightMeanIo: Record<TokenKind, number>;
  };
  uncoordinated: Figures;
  headroom: Figures & { unplaced: Plan['unplaced']; leftOut: LeftOutFigures; phases: number; planning: Timing };
  stability: { change: string; movedWithPrevious: number; movedFromScratch: number; leftOut: number; slots: number }[];
  nights: ({
    seed: number;
    jobs: number;
    overlaps: number;
    makespanRatio: number;
    makespanOverWorkRatio: number;
    ladderRatios: number[];
    aloneRatios: number[];
  } & LeftOutFigures)[];
  speed: {
    jobs: number;
    vms: number;
    host: PlanInput['host'];
    placed: number;
    leftOut: LeftOutFigures;
    plan: Timing;
    replanWithPrevious: Timing;
    runs: number;
  };
  eventLoop: { onLoop: LoopStall; onThread: LoopStall; slots: number };
  cluster: ClusterFigures;
  targets: Record<string, boolean>;
};

function report(r: Result, out: string): string {
  const { host } = r.scenario;
  const mbps = (b: number) => `${Math.round(b / 1e6)} MB/s`;
  const hm = (ms: number) => `${Math.floor(ms / HOUR)} h ${String(Math.round((ms % HOUR) / 60_000)).padStart(2, '0')}`;
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const ms = (t: Timing) =>
    `median ${t.medianMs.toFixed(1)} ms (min ${t.minMs.toFixed(1)}, max ${t.maxMs.toFixed(1)}); CPU median ${t.cpuMedianMs.toFixed(1)} ms; first call ${t.firstMs.toFixed(0)} ms`;
  const why = (l: LeftOutFigures) =>
    `${l.cannotRunAlone} cannot run alone, ${l.provenByVm} proven by their VM's jobs, ${l.maybeFeasible} maybe feasible`;
  const row = (label: string, f: (x: Figures) => string) =>
    `  ${label.padEnd(36)}${f(r.uncoordinated).padEnd(22)}${f(r.headroom)}`;
  const night = (x: Figures) =>
    `${hm(x.night.makespanMs)} (${(x.night.makespanMs / x.night.lowerBoundMs).toFixed(2)}×)`;
  const reasons = new Map<string, number>();
  for (const u of r.headroom.unplaced) {
    const key = `${u.reason}${u.blockedBy ? ` (${u.blockedBy})` : ''}`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const spread = (xs: number[], digits = 0) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const f = (x: number) => x.toFixed(digits);
    return `${f(sorted[0])} to ${f(sorted[sorted.length - 1])} (median ${f(sorted[Math.floor(sorted.length / 2)])})`;
  };
  const left = r.headroom.unplaced.length;
  const sum = (f: (n: Result['nights'][number]) => number) => r.nights.reduce((total, n) => total + f(n), 0);
  const maybe = sum((n) => n.maybeFeasible);
  return [
    '',
    `  machine      ${r.machine.cores} cores (${r.machine.cpu}), node ${r.machine.node}; load average ${r.machine.loadAverageBefore.toFixed(1)} before, ${r.machine.loadAverageAfter.toFixed(1)} after`,
    `  host         ${r.scenario.vms} VMs, ${r.scenario.jobs} jobs in 24 h (seed ${r.seed}), ${r.scenario.nightJobs} of them with cron times from 22:00 to 06:00;`,
    `               caps ${host.maxGuestTokens} GUEST / ${host.maxHypervisorTokens} HYPERVISOR, backup budget ${mbps(host.budget.ioBytesPerSec)} and ${host.budget.cpuPercent / 100} cores,`,
    `               ${host.minStartGapMs / 1000} s between starts; the disks deliver ${mbps(r.scenario.diskBytesPerSec)} in all`,
    '',
    `  ${''.padEnd(36)}${'uncoordinated'.padEnd(22)}Headroom plan`,
    row('jobs run / placed', (x) => `${x.run} of ${x.jobs}`),
    row('guest×hypervisor overlaps (pairs)', (x) => String(x.guestHypervisorOverlapPairs)),
    row('  minutes both kinds run', (x) => x.guestHypervisorOverlapMinutes.toFixed(0)),
    row('same-VM overlaps (pairs)', (x) => String(x.sameVmOverlapPairs)),
    row('peak concurrent backups', (x) => String(x.peakConcurrent)),
    row('peak backup I/O demand', (x) => mbps(x.peakIoDemandBytesPerSec)),
    row('peak backup CPU demand', (x) => `${(x.peakCpuDemandPercent / 100).toFixed(1)} cores`),
    row('minutes over the backup budget', (x) => x.overBudgetMinutes.toFixed(0)),
    row('most starts in one minute', (x) => String(x.maxStartsPerMinute)),
    row('finished inside their windows', (x) => pct(x.insideWindowShare)),
    row('night makespan (× lower bound)', night),
    `  night lower bound                   ${hm(r.headroom.night.lowerBoundMs)}; total work ÷ I/O budget alone: ${hm(r.headroom.night.workOverBudgetMs)}`,
    `  Headroom phases                     ${r.headroom.phases}, GUEST and HYPERVISOR alternating`,
    `  Headroom left out                   ${left === 0 ? 'none' : `${[...reasons].map(([k, n]) => `${n} ${k}`).join(', ')}: ${why(r.headroom.leftOut)}`}`,
    `  planning these ${r.scenario.jobs} jobs            ${ms(r.headroom.planning)}`,
    '',
    '  uncoordinated: simulated, every job at its cron time, sharing the disks in proportion when they ask',
    '  for more than they deliver. Headroom: the plan, each job taking its expected duration.',
    '',
    `  ${r.nights.length} nights (seeds ${r.nights[0].seed} to ${r.nights[r.nights.length - 1].seed}), Headroom plan: overlaps ${spread(r.nights.map((n) => n.overlaps))}; jobs left out ${spread(r.nights.map((n) => n.leftOut))}`,
    `    of ${spread(r.nights.map((n) => n.jobs))}; in all ${sum((n) => n.leftOut)} left out: ${why({ leftOut: 0, cannotRunAlone: sum((n) => n.cannotRunAlone), provenByVm: sum((n) => n.provenByVm), maybeFeasible: maybe, maybeFeasibleIds: [] })}`,
    ...(maybe
      ? [
          `    maybe feasible: ${r.nights.flatMap((n) => n.maybeFeasibleIds.map((id) => `${id} (seed ${n.seed})`)).join(', ')}`,
        ]
      : []),
    `    night makespan × lower bound ${spread(
      r.nights.map((n) => n.makespanRatio),
      3,
    )}; × total work ÷ I/O budget alone ${spread(
      r.nights.map((n) => n.makespanOverWorkRatio),
      2,
    )}`,
    `    per night (× bound): ${r.nights.map((n) => n.makespanRatio.toFixed(3)).join(' ')}`,
    ...[true, false].flatMap((placedAll) => {
      const these = r.nights.filter((n) => (n.leftOut === 0) === placedAll);
      const label = placedAll ? 'every run placed' : 'runs left out';
      return these.length === 0
        ? []
        : [
            `    nights with ${label} (${these.length}): × bound ${spread(
              these.map((n) => n.makespanRatio),
              3,
            )}`,
          ];
    }),
    '',
    ...gapReport(r),
    '',
    '  replanned after one change, with the previous plan: other slots moved (from scratch instead)',
    ...r.stability.map(
      (s) =>
        `    ${s.change.padEnd(22)}${s.movedWithPrevious} of ${s.slots} (${s.movedFromScratch}); left out: ${s.leftOut}`,
    ),
    '',
    `  planning ${r.speed.jobs} jobs: the first ${r.speed.jobs} of a host with ${r.speed.vms} VMs and the same mix, caps ${r.speed.host.maxGuestTokens}/${r.speed.host.maxHypervisorTokens},`,
    `  ${r.speed.host.minStartGapMs / 1000} s between starts; ${r.speed.placed} placed, ${r.speed.jobs - r.speed.placed} left out: ${why(r.speed.leftOut)}`,
    `  (no repair and no favour-late step at this size: their tries plan the whole host again, REPAIR_WORK_JOBS ${REPAIR_WORK_JOBS} and`,
    `  FAVOUR_LATE_WORK_JOBS ${FAVOUR_LATE_WORK_JOBS} ÷ ${r.speed.jobs} jobs = ${Math.floor(REPAIR_WORK_JOBS / r.speed.jobs)} and ${Math.floor(FAVOUR_LATE_WORK_JOBS / r.speed.jobs)} tries).`,
    `  ${r.speed.runs} runs after ${WARM_UP_RUNS} untimed:`,
    `    from scratch                      ${ms(r.speed.plan)}`,
    `    one job removed, with previous    ${ms(r.speed.replanWithPrevious)}`,
    '',
    `  the event loop while the coordinator plans this host's day from scratch (${r.eventLoop.onLoop.plans} plans of ${r.eventLoop.slots} slots, declared`,
    '  as its agents and schedule would declare it; perf_hooks.monitorEventLoopDelay):',
    `    planned on the event loop         longest stall ${r.eventLoop.onLoop.maxMs.toFixed(1)} ms (p99 ${r.eventLoop.onLoop.p99Ms.toFixed(1)} ms)`,
    `    on the planning thread            longest stall ${r.eventLoop.onThread.maxMs.toFixed(1)} ms (p99 ${r.eventLoop.onThread.p99Ms.toFixed(1)} ms), as the coordinator does`,
    '',
    ...clusterReport(r.cluster),
    '',
    `  targets (informational), over the ${r.nights.length} nights:`,
    `    0 guest×hypervisor overlaps       ${mark(r.targets.noOverlaps)}`,
    `    every feasible job placed         ${mark(r.targets.everyFeasibleJobPlaced)}${maybe ? ` (${maybe} left out that a plan might place)` : ''}`,
    `    night makespan ≤ 1.1 × bound      ${mark(r.targets.makespanWithin10Percent)} (the sharpest bound, every rule of the host)`,
    `    ... ≤ 1.1 × total work ÷ budget   ${mark(r.targets.makespanWithin10PercentOfLiteral)} (the literal bound; ${literalVerdict(r)})`,
    `    10,000 jobs in under 1 s          ${mark(r.targets.tenThousandUnderOneSecond)} (wall-clock median; CPU time median ${r.speed.plan.cpuMedianMs.toFixed(0)} ms, load average ${r.machine.loadAverageAfter.toFixed(1)})`,
    `    cluster: shared target held       ${mark(r.targets.clusterTargetHeld)} (0 minutes over its limits in the cluster plan)`,
    `  written to ${path.relative(process.cwd(), out)}`,
    '',
  ].join('\n');
}

/**
 * Where the plan's makespan stands against the literal bound, rung by rung: the median over the nights of
 * each bound × the literal one, and what each constraint adds; then the plan above the sharpest bound.
 */
function gapReport(r: Result): string[] {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rung = (i: number) => median(r.nights.map((n) => n.ladderRatios[i]));
  const alone = (i: number) => median(r.nights.map((n) => n.aloneRatios[i]));
  const plan = median(r.nights.map((n) => n.makespanOverWorkRatio));
  const { host } = r.scenario;
  const phaseIo = (kind: TokenKind) => {
    const cap = kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens;
    const mean = r.scenario.nightMeanIo[kind];
    return `${cap} × ${Math.round(mean / 1e6)} MB/s = ${Math.round(Math.min(cap * mean, host.budget.ioBytesPerSec) / 1e6)} MB/s`;
  };
  return [
    `  the gap to total work ÷ I/O budget, bound by bound (× that literal bound, median of the ${r.nights.length} nights): each line`,
    '  adds one constraint to those above it (what it adds there), and, last, the I/O budget with that constraint alone:',
    ...BOUND_STEPS.map((step, i) =>
      i === 0
        ? `    ${step.padEnd(34)}${rung(i).toFixed(2)}×  (the literal bound)`
        : `    ${`+ ${step}`.padEnd(34)}${rung(i).toFixed(2)}×  (+${(rung(i) - rung(i - 1)).toFixed(2)}; alone ${alone(i).toFixed(2)}×)`,
    ),
    `    Headroom's plan                   ${plan.toFixed(2)}×  (+${(plan - rung(BOUND_STEPS.length - 1)).toFixed(2)} above the sharpest bound)`,
    `  why the caps weigh so: a full GUEST phase spends ${phaseIo('GUEST')}, a full HYPERVISOR phase ${phaseIo('HYPERVISOR')}`,
    `  of the ${Math.round(host.budget.ioBytesPerSec / 1e6)} MB/s budget (seed ${r.seed}, duration-weighted mean of the declared I/O).`,
  ];
}

/** Whether any plan could meet the literal target on these nights: not if the sharpest bound is already past it. */
function literalVerdict(r: Result): string {
  const least = Math.min(...r.nights.map((n) => n.ladderRatios[n.ladderRatios.length - 1]));
  return least > 1.1
    ? `no plan can meet it on this host: the sharpest bound alone is ≥ ${least.toFixed(2)}× it on every night`
    : `the sharpest bound allows it on some nights (least ${least.toFixed(2)}×)`;
}

main().catch((e) => {
  process.stderr.write(`bench:storm failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});

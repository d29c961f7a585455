/**
 * The planner: one host's backup occurrences for the coming hours → a time-slotted plan that keeps the
 * host's rules at every instant:
 *  1. GUEST and HYPERVISOR slots never overlap: the host alternates between phases of one kind;
 *  2. at most one slot per VM, and at most the policy's cap of each kind;
 *  3. the costs of concurrent slots stay within the host's backup budget (I/O and CPU);
 *  4. two starts are at least `minStartGapMs` apart, so a window's opening is not a storm of starts;
 * and keeps every placed job inside its window: it starts at or after its earliest start (its cron time)
 * and `now`, and finishes by its window's end.
 *
 * How, in two steps:
 *  1. phasedStarts() runs the host forward in time serving one kind at a time, so GUEST and HYPERVISOR
 *     work go in alternating phases: a phase lasts while its kind has work ready and the other kind's
 *     deadlines allow. It proposes a start for most jobs.
 *  2. complete() keeps the proposals that break no rule and places every other job, in planning order
 *     (window end, then higher priority, then longer duration, then id: earliest deadline first), at
 *     the earliest start where it breaks no rule, gaps earlier in the timeline included: the serial
 *     schedule.
 * What it guarantees:
 *  - no rule is broken, and no job left out could be added to the final plan without moving another;
 *  - if running the jobs one at a time in planning order, each at its earliest start after the previous
 *    one ended and at least minStartGapMs after the previous start, fits every window, every job is
 *    placed (the serial schedule alone then does it, and is used when the phases left a job out);
 *  - the plan does not depend on the order of the input.
 * It is not an optimum (whether every window can be met is NP-hard): a job reported 'no-room' might fit
 * in a plan that moved others.
 *
 * Stability: given the previous plan, a job keeps its slot while that slot still fits its window and the
 * rules against the kept slots that start before it; only the others are placed anew (step 2). If that
 * leaves more jobs without room than a plan from scratch would, the plan from scratch is returned.
 */
import { InvalidArgumentError } from './errors';
import { type Blocker, HostTimeline, type Need, capOf, partitionPoint } from './host-timeline';
import { type Budget, type TokenKind, TOKEN_KINDS, otherKind } from './lease';
import type { HostPolicy } from './policy';

/** One occurrence of a backup job. Times are Clock milliseconds. */
export interface PlanJob {
  /** Unique on the host and the same in every replan (e.g. `vm/job@cronTime`): how a kept slot is found. */
  id: string;
  kind: TokenKind;
  vm: string;
  /** It may start at or after this: its cron time. */
  earliestStart: number;
  /** It must finish by this. */
  windowEnd: number;
  /** Expected duration in ms, above 0 (duration-estimate.ts learns it from the job's history). */
  durationMs: number;
  /**
   * What it spends while it runs. A field of 0 is undeclared: the job then counts as the host budget's
   * field divided by its kind's cap, so that jobs declaring nothing are held back by the caps alone.
   */
  cost: Budget;
  /** Among jobs with the same window end, higher goes first. */
  priority: number;
}

/** A backup running now: it holds its VM, its kind and its cost until its expected end. */
export interface RunningBackup {
  kind: TokenKind;
  vm: string;
  /** At or before `now` it holds nothing: the caller extends the estimate of a backup running late. */
  expectedEnd: number;
  cost: Budget;
}

export interface PlanHost extends Pick<HostPolicy, 'maxGuestTokens' | 'maxHypervisorTokens'> {
  /** What all the backups running together may spend; a field of 0 is unlimited. */
  budget: Budget;
  /** Minimum time between two planned starts on the host, in ms; 0 for none. */
  minStartGapMs: number;
}

export interface PlanInput {
  now: number;
  host: PlanHost;
  jobs: readonly PlanJob[];
  running?: readonly RunningBackup[];
  /** The last plan's slots, kept where they still fit. */
  previous?: { readonly slots: readonly { readonly id: string; readonly start: number }[] };
}

export interface PlannedSlot {
  id: string;
  kind: TokenKind;
  vm: string;
  start: number;
  end: number;
}

export type UnplacedReason =
  /** The window is shorter than the expected duration. */
  | 'window-too-short'
  /** Too late: starting now it would not finish before its window's end. */
  | 'window-passed'
  /** Alone it would spend more than the host budget. */
  | 'cost-exceeds-budget'
  /** The slots placed before it (earlier deadlines, kept slots, running backups) leave no room in its window. */
  | 'no-room';


export type { Blocker };

export interface UnplacedJob {
  id: string;
  reason: UnplacedReason;
  /** For 'no-room': what stands in the way at the job's latest start, in this plan. */
  blockedBy?: Blocker;
}

/** A maximal run of slots of one kind, in start order. */
export interface Phase {
  kind: TokenKind;
  start: number;
  end: number;
}

export interface Plan {
  /** By start, then id. */
  slots: PlannedSlot[];
  /** In planning order. */
  unplaced: UnplacedJob[];
  phases: Phase[];
}

/**
 * Plans one host's jobs.
 * @throws InvalidArgumentError naming the first malformed field (e.g. `jobs[3].durationMs`).
 */
export function planHost(input: PlanInput): Plan {
  validate(input);
  const order = input.jobs.map((job) => prepare(job, input)).sort(compareJobs);
  order.forEach((p, i) => (p.rank = i));
  const noRoom = (p: Plan) => p.unplaced.filter((u) => u.reason === 'no-room').length;
  let kept: Plan | undefined;
  if (input.previous) {
    const byId = new Map(order.map((p) => [p.job.id, p]));
    const previous = new Map<Prepared, number>();
    for (const s of input.previous.slots) {
      const p = byId.get(s.id);
      if (p) previous.set(p, s.start);
    }
    kept = complete(order, input, previous);
    if (noRoom(kept) === 0) return kept;
  }
  const phased = complete(order, input, phasedStarts(order, input));
  const best = kept && noRoom(kept) <= noRoom(phased) ? kept : phased;
  // The serial schedule is what the guarantee rests on; it is only worth its time when it holds.
  return noRoom(best) > 0 && fitsOneAtATime(order, input) ? complete(order, input, new Map()) : best;
}

/**
 * Whether the jobs, run one at a time in planning order after the running backups, each at its
 * earliest start after the previous one ended and at least minStartGapMs after the previous start, all
 * fit their windows. Then the serial schedule places every job: by induction, each job's earliest start
 * there is at most its start here, since everything placed before it has ended by then.
 */
function fitsOneAtATime(order: readonly Prepared[], { now, host, running = [] }: PlanInput): boolean {
  let free = running.reduce((latest, r) => Math.max(latest, r.expectedEnd), now);
  let nextStart = -Infinity;
  for (const p of order) {
    if (p.alone) continue;
    const start = Math.max(p.release, free, nextStart);
    if (start > p.latest) return false;
    free = start + p.job.durationMs;
    nextStart = start + host.minStartGapMs;
  }
  return true;
}


interface Prepared {
  job: PlanJob;
  need: Need;
  /** Its first and last possible start. */
  release: number;
  latest: number;
  /** Set when the job cannot run even alone. */
  alone?: UnplacedReason;
  /** Its place in planning order. */
  rank: number;
}

function prepare(job: PlanJob, { now, host }: PlanInput): Prepared {
  const need = needOf(job.kind, job.vm, job.cost, host);
  const latest = job.windowEnd - job.durationMs;
  let alone: UnplacedReason | undefined;
  if (latest < job.earliestStart) alone = 'window-too-short';
  else if (latest < now) alone = 'window-passed';
  else if ((host.budget.ioBytesPerSec > 0 && need.io > host.budget.ioBytesPerSec) || (host.budget.cpuPercent > 0 && need.cpu > host.budget.cpuPercent)) {
    alone = 'cost-exceeds-budget';
  }
  return { job, need, release: Math.max(job.earliestStart, now), latest, alone, rank: 0 };
}

function needOf(kind: TokenKind, vm: string, cost: Budget, host: PlanHost): Need {
  const cap = capOf(kind, host);
  return {
    kind,
    vm,
    io: effectiveCost(cost.ioBytesPerSec, host.budget.ioBytesPerSec, cap),
    cpu: effectiveCost(cost.cpuPercent, host.budget.cpuPercent, cap),
  };
}

function effectiveCost(declared: number, budget: number, cap: number): number {
  if (budget === 0) return 0; // unlimited: what a job spends does not matter
  return declared > 0 ? declared : Math.max(1, Math.floor(budget / cap));
}


function compareJobs(a: Prepared, b: Prepared): number {
  const x = a.job;
  const y = b.job;
  // Of two jobs due together, the longer must start first.
  return x.windowEnd - y.windowEnd || y.priority - x.priority || y.durationMs - x.durationMs || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
}

/**
 * Places the proposed starts that still fit, by start (so of two kept slots that no longer fit together,
 * the earlier stays), then every other job in planning order at its earliest start that breaks no rule:
 * the serial schedule.
 */
function complete(order: readonly Prepared[], input: PlanInput, proposed: ReadonlyMap<Prepared, number>): Plan {
  const timeline = timelineWithRunning(input);
  const starts = new Map<Prepared, number>();
  const place = (p: Prepared, start: number) => {
    timeline.add(p.need, start, start + p.job.durationMs, true);
    starts.set(p, start);
  };
  const byStart = [...proposed].filter(([p, s]) => !p.alone && s >= p.release && s <= p.latest);
  byStart.sort(([p, s], [q, t]) => s - t || p.rank - q.rank);
  // Nothing placed so far starts after s: the usage at s is the most the job would meet.
  for (const [p, s] of byStart) if (!timeline.conflictNow(p.need, s, p.job.durationMs)) place(p, s);
  const left: Prepared[] = [];
  for (const p of order) {
    if (starts.has(p)) continue;
    const start = p.alone ? undefined : timeline.earliestStart(p.need, p.job.durationMs, p.release, p.latest);
    if (start === undefined) left.push(p);
    else place(p, start);
  }
  // What stands in the way is read from the final plan, the one people see.
  const unplaced = left.map(({ job, need, latest, alone }): UnplacedJob =>
    alone ? { id: job.id, reason: alone } : { id: job.id, reason: 'no-room', blockedBy: timeline.conflictAt(need, latest, job.durationMs)?.blocker },
  );
  const slots = [...starts].map(([{ job }, start]) => ({ id: job.id, kind: job.kind, vm: job.vm, start, end: start + job.durationMs }));
  slots.sort((a, b) => a.start - b.start || (a.id < b.id ? -1 : 1));
  return { slots, unplaced, phases: phasesOf(slots) };
}

/**
 * Proposes starts by running the host forward in time, serving one kind at a time (a phase). In a phase,
 * ready jobs of its kind start in planning order as soon as the rules allow, except that while jobs of the
 * other kind wait, a job is held back if it
 *  - would end after the other kind's guard: the latest time the host can turn to the waiting jobs and
 *    still start each by its latest start; or
 *  - was released after the oldest of them and can wait for them to be served (the admission rule's
 *    fairness between kinds, bent only for deadlines), unless it would end within the run of its kind
 *    already going on, and so delays nobody.
 * The phase ends when its kind has nothing ready that is not held back. So hourly guest jobs released
 * during a run of hypervisor backups wait and go together in one short guest phase, and a guest phase
 * forced by deadlines gives the host back to the waiting hypervisor backups once those are served.
 * A proposal: complete() checks it and places what it missed.
 */
function phasedStarts(order: readonly Prepared[], input: PlanInput): Map<Prepared, number> {
  const { host } = input;
  const timeline = timelineWithRunning(input);
  const starts = new Map<Prepared, number>();
  const pending = order.filter((p) => !p.alone).sort((a, b) => a.release - b.release || a.rank - b.rank);
  /** Released and not started, in planning order; jobs past their latest start leave before `waiting` is read. */
  const ready: Record<TokenKind, Prepared[]> = { GUEST: [], HYPERVISOR: [] };
  const earliestLatest: Record<TokenKind, number> = { GUEST: Infinity, HYPERVISOR: Infinity };
  const summaries = new Map<TokenKind, Waiting>();
  const waiting = (kind: TokenKind) => summaries.get(kind) ?? summaries.set(kind, summarise(ready[kind], host)).get(kind)!;

  /** Starts what it can of `kind` at t; says whether it started any, whether all are held back, and when to try again. */
  const startReady = (kind: TokenKind, t: number) => {
    const list = ready[kind];
    const other = waiting(otherKind(kind));
    let started = false;
    let held = 0;
    let wake = Infinity;
    for (let i = 0; i < list.length; i++) {
      const p = list[i];
      const end = t + p.job.durationMs;
      const waits = p.release > other.oldestRelease && p.latest >= t + other.spanMs;
      if (end > other.guard || (waits && end > timeline.runEnd(kind, t))) {
        held++;
        continue;
      }
      // Nothing starts after t here, so the usage at t is the most the backup would meet.
      const conflict = timeline.conflictNow(p.need, t, p.job.durationMs);
      if (!conflict) {
        timeline.add(p.need, t, end, true);
        starts.set(p, t);
        list.splice(i--, 1);
        summaries.delete(kind);
        started = true;
        continue;
      }
      wake = Math.min(wake, conflict.retryAt);
      // These hold back every job of the kind alike.
      if (conflict.blocker === 'start-gap' || conflict.blocker === 'kind-cap' || conflict.blocker === 'other-kind') break;
    }
    return { started, allHeld: list.length > 0 && held === list.length, wake };
  };

  let phase: TokenKind | undefined;
  let next = 0;
  for (let t = pending[0]?.release ?? Infinity; t < Infinity; ) {
    for (; next < pending.length && pending[next].release <= t; next++) {
      const p = pending[next];
      const list = ready[p.need.kind];
      list.splice(partitionPoint(list, (q) => q.rank < p.rank), 0, p);
      earliestLatest[p.need.kind] = Math.min(earliestLatest[p.need.kind], p.latest);
      summaries.delete(p.need.kind);
    }
    for (const kind of TOKEN_KINDS) {
      if (earliestLatest[kind] >= t) continue;
      ready[kind] = ready[kind].filter((p) => p.latest >= t);
      earliestLatest[kind] = ready[kind].reduce((min, p) => Math.min(min, p.latest), Infinity);
      summaries.delete(kind);
    }
    let wake = Infinity;
    // At most one change of phase at a given time: the second attempt serves the other kind.
    for (let attempt = 0; attempt < 2; attempt++) {
      const usage = timeline.usageAt(t);
      const active = (kind: TokenKind) => (kind === 'GUEST' ? usage.guests : usage.hypervisors) > 0;
      if (phase === undefined || (!active(phase) && ready[phase].length === 0)) {
        // The kind whose ready jobs can wait the least.
        const kinds = TOKEN_KINDS.filter((k) => ready[k].length > 0);
        phase = kinds.sort((a, b) => waiting(a).guard - waiting(b).guard)[0];
      }
      if (phase === undefined) break;
      const tried = startReady(phase, t);
      wake = Math.min(wake, tried.wake);
      if (tried.started || ready[otherKind(phase)].length === 0) break;
      if (ready[phase].length > 0 && !tried.allHeld && active(phase)) break;
      phase = otherKind(phase);
    }
    t = Math.min(pending[next]?.release ?? Infinity, timeline.nextChange(t), wake);
  }
  return starts;
}

/** Ready jobs of one kind, as the other kind sees them. */
interface Waiting {
  /** The latest time the host can turn to them and still start each by its latest start (estimated). */
  guard: number;
  /** How long serving them all would take (estimated). */
  spanMs: number;
  oldestRelease: number;
}

/**
 * Estimates, for ready jobs of one kind: taken by latest start, the work queued before each runs at the
 * kind's sustainable concurrency (its cap, or fewer when their average cost would exhaust the budget),
 * and their starts are spaced by the gap. complete() is what checks.
 */
function summarise(jobs: readonly Prepared[], host: PlanHost): Waiting {
  if (jobs.length === 0) return { guard: Infinity, spanMs: 0, oldestRelease: Infinity };
  const byLatest = [...jobs].sort((a, b) => a.latest - b.latest);
  const share = (budget: number, total: number) => (budget > 0 && total > 0 ? (budget * jobs.length) / total : Infinity);
  const concurrency = Math.max(
    1,
    Math.min(
      capOf(jobs[0].need.kind, host),
      share(host.budget.ioBytesPerSec, jobs.reduce((sum, p) => sum + p.need.io, 0)),
      share(host.budget.cpuPercent, jobs.reduce((sum, p) => sum + p.need.cpu, 0)),
    ),
  );
  const queued = (i: number, queuedMs: number) => Math.max(queuedMs / concurrency, i * host.minStartGapMs);
  let queuedMs = 0;
  let guard = Infinity;
  let oldestRelease = Infinity;
  byLatest.forEach((p, i) => {
    guard = Math.min(guard, p.latest - queued(i, queuedMs));
    queuedMs += p.job.durationMs;
    oldestRelease = Math.min(oldestRelease, p.release);
  });
  return { guard, spanMs: queued(jobs.length, queuedMs), oldestRelease };
}

function phasesOf(slots: readonly PlannedSlot[]): Phase[] {
  const phases: Phase[] = [];
  for (const s of slots) {
    const last = phases[phases.length - 1];
    if (last?.kind === s.kind) last.end = Math.max(last.end, s.end);
    else phases.push({ kind: s.kind, start: s.start, end: s.end });
  }
  return phases;
}

/** A timeline holding the running backups from now to their expected end. */
function timelineWithRunning({ host, now, running = [] }: PlanInput): HostTimeline {
  const timeline = new HostTimeline(host);
  for (const r of running) {
    if (r.expectedEnd > now) timeline.add(needOf(r.kind, r.vm, r.cost, host), now, r.expectedEnd, false);
  }
  return timeline;
}

function validate({ now, host, jobs, running = [], previous }: PlanInput): void {
  const check = (ok: boolean, field: string, problem: string) => {
    if (!ok) throw new InvalidArgumentError(field, problem);
  };
  const finite = (v: number, field: string) => check(Number.isFinite(v), field, `must be a finite number, got ${v}`);
  const count = (v: number, field: string, min: number) =>
    check(Number.isSafeInteger(v) && v >= min, field, `must be an integer of at least ${min}, got ${v}`);
  const kind = (v: TokenKind, field: string) => check(TOKEN_KINDS.includes(v), field, `must be GUEST or HYPERVISOR, got ${v}`);
  const cost = (c: Budget, field: string) => {
    count(c.ioBytesPerSec, `${field}.ioBytesPerSec`, 0);
    count(c.cpuPercent, `${field}.cpuPercent`, 0);
  };
  finite(now, 'now');
  count(host.maxGuestTokens, 'host.maxGuestTokens', 1);
  count(host.maxHypervisorTokens, 'host.maxHypervisorTokens', 1);
  cost(host.budget, 'host.budget');
  check(Number.isFinite(host.minStartGapMs) && host.minStartGapMs >= 0, 'host.minStartGapMs', `must be 0 or more, got ${host.minStartGapMs}`);
  const ids = new Set<string>();
  jobs.forEach((j, i) => {
    const at = `jobs[${i}]`;
    check(j.id.length > 0 && !ids.has(j.id), `${at}.id`, `must be unique and not empty, got '${j.id}'`);
    ids.add(j.id);
    kind(j.kind, `${at}.kind`);
    check(j.vm.length > 0, `${at}.vm`, 'must not be empty');
    finite(j.earliestStart, `${at}.earliestStart`);
    finite(j.windowEnd, `${at}.windowEnd`);
    check(Number.isFinite(j.durationMs) && j.durationMs > 0, `${at}.durationMs`, `must be above 0, got ${j.durationMs}`);
    cost(j.cost, `${at}.cost`);
    finite(j.priority, `${at}.priority`);
  });
  running.forEach((r, i) => {
    kind(r.kind, `running[${i}].kind`);
    check(r.vm.length > 0, `running[${i}].vm`, 'must not be empty');
    finite(r.expectedEnd, `running[${i}].expectedEnd`);
    cost(r.cost, `running[${i}].cost`);
  });
  previous?.slots.forEach((s, i) => finite(s.start, `previous.slots[${i}].start`));
}

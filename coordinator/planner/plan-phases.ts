/**
 * The planner's first step (planner.ts): proposed starts from running the host forward in time, serving
 * one kind of backup at a time, so that GUEST and HYPERVISOR work go in few, full phases. Pure.
 */
import { capOf } from './host-timeline';
import { partitionPoint } from './partition-point';
import { type TokenKind, TOKEN_KINDS, otherKind } from '../domain/lease';
import { RESERVE_MS, VmJobs } from './vm-jobs';
import { timelineWithRunning } from './plan-prepared';
import type { PlanHost, PlanInput, Prepared } from './types';

/**
 * Proposes starts by running the host forward in time, serving one kind at a time (a phase). In a phase,
 * ready jobs of its kind start as soon as the rules allow, in this order:
 *  - the `favoured` jobs (the favour-late step's, plan-favour-late.ts) that can start now and the jobs of
 *    their VMs that open a slot for one (vm-jobs.ts), as far as the other jobs' deadlines allow; and a
 *    token is kept free for such a job due soon when a favoured job has few openings left (only a job that
 *    cannot wait takes it);
 *  - then, by latest start, the urgent ones: those whose latest start comes before the kind's ready work
 *    could all be served (see summarise);
 *  - then the others, longest first: they can wait for all the rest, and a phase whose long jobs start
 *    first ends with its tokens busy instead of with one long straggler (longest processing time first,
 *    the classic rule for a short makespan);
 * except that while jobs of the other kind wait, a job is held back if it
 *  - would end after the other kind's guard: the latest time the host can turn to the waiting jobs and
 *    still start each by its latest start; or
 *  - became ready after the oldest of them and can wait for them to be served (the admission rule's
 *    fairness between kinds, bent only for deadlines), unless it would end within the run of its kind
 *    already going on, and so delays nobody.
 * The phase ends when its kind has nothing ready that is not held back. So hourly guest jobs that become
 * ready during a run of hypervisor backups wait and go together in one short guest phase, and a guest phase
 * forced by deadlines gives the host back to the waiting hypervisor backups once those are served.
 * `pinned` jobs (the repair step's, plan-repair.ts) are held at their starts from the outset and the
 * others planned around them.
 * A proposal: the caller checks it and places what it missed.
 */
export function phasedStarts(
  order: readonly Prepared[],
  input: PlanInput,
  pinned: ReadonlyMap<Prepared, number> = new Map(),
  favoured: ReadonlySet<string> = new Set(),
): Map<Prepared, number> {
  const { host } = input;
  const timeline = timelineWithRunning(input);
  const starts = new Map<Prepared, number>(pinned);
  for (const [p, start] of pinned) timeline.add(p.need, start, start + p.job.durationMs, true);
  const pending = order
    .filter((p) => !p.unplaceable && !pinned.has(p))
    .sort((a, b) => a.readyAt - b.readyAt || a.rank - b.rank);
  /** Ready and not started, per kind, in both orders; jobs past their latest start leave before `waiting` is read. */
  const ready: Record<TokenKind, Ready> = { GUEST: new Ready(), HYPERVISOR: new Ready() };
  const vms = new VmJobs(pending, (p) => starts.has(p), favoured);
  const summaries = new Map<TokenKind, Waiting>();
  const waiting = (kind: TokenKind) =>
    summaries.get(kind) ?? summaries.set(kind, summarise(ready[kind], host)).get(kind)!;

  /** Starts what it can of `kind` at t; says whether it started any, whether all are held back, and when to try again. */
  const startReady = (kind: TokenKind, t: number) => {
    const { byLatest, byLength } = ready[kind];
    const other = waiting(otherKind(kind));
    const horizon = t + ready[kind].spanMs(host);
    let started = false;
    let held = 0;
    let wake = Infinity;
    const cap = capOf(kind, host);
    const usage = timeline.usageAt(t);
    /** How many backups of the kind run at t, and how many tokens are kept for jobs favoured ones follow. */
    let holding = kind === 'GUEST' ? usage.guests : usage.hypervisors;
    let reserved = 0;
    /** Whether no job of the kind can start at t any more. */
    const tryStart = (p: Prepared): boolean => {
      // A token kept for a job that a favoured one follows goes only to a job that cannot wait that long.
      if (reserved > 0 && holding >= cap - reserved && p.latestStart >= t + RESERVE_MS) return true;
      const end = t + p.job.durationMs;
      const waits = p.readyAt > other.oldestReadyAt && p.latestStart >= t + other.spanMs;
      if (end > other.guard || (waits && end > timeline.runEnd(kind, t))) {
        held++;
        return false;
      }
      // Nor if it would hold its VM past the latest start of another job of the VM (an hourly job beside
      // a long nightly one): that one goes first, and this one right after it.
      if (vms.pushesOut(p, t, end)) {
        held++;
        return false;
      }
      // Nothing starts after t here but pinned slots, so without them the usage at t is the most the
      // backup would meet.
      const conflict =
        pinned.size > 0
          ? timeline.conflictAt(p.need, t, p.job.durationMs)
          : timeline.conflictNow(p.need, t, p.job.durationMs);
      if (!conflict) {
        timeline.add(p.need, t, end, true);
        starts.set(p, t);
        vms.ready(p, false);
        ready[kind].remove(p);
        summaries.delete(kind);
        started = true;
        holding++;
        return false;
      }
      wake = Math.min(wake, conflict.retryAt);
      // These hold back every job of the kind alike.
      return conflict.blocker === 'start-gap' || conflict.blocker === 'kind-cap' || conflict.blocker === 'other-kind';
    };
    let blocked = false;
    if (vms.waiting && holding < cap) {
      const tryFirst = vms.toTryFirst(kind, t);
      const reserve = vms.tokensToReserve(kind, t);
      // What the kind's other ready jobs can give up and still start by their latest starts: an opening
      // or a token kept free must fit in it, though a favoured job with few openings left takes any spare.
      const spare = tryFirst.size > 0 || reserve.count > 0 ? waiting(kind).guard - t : 0;
      const concurrency = ready[kind].concurrency(host);
      for (const [q, p] of tryFirst) {
        if (blocked || !ready[kind].has(q)) continue;
        if (q.job.durationMs / concurrency <= spare || (spare > 0 && vms.fewOpeningsLeft(p, t))) blocked = tryStart(q);
      }
      if (reserve.count > 0 && (reserve.due - t) * reserve.count <= spare * concurrency) {
        reserved = reserve.count;
        wake = Math.min(wake, reserve.due);
      }
    }
    for (let i = 0; !blocked && i < byLatest.length && byLatest[i].latestStart < horizon; i++) {
      const p = byLatest[i];
      blocked = tryStart(p);
      if (byLatest[i] !== p) i--;
    }
    for (let i = 0; !blocked && i < byLength.length; i++) {
      const p = byLength[i];
      if (p.latestStart < horizon) continue;
      blocked = tryStart(p);
      if (byLength[i] !== p) i--;
    }
    return { started, allHeld: byLatest.length > 0 && held === byLatest.length, wake };
  };

  let phase: TokenKind | undefined;
  let next = 0;
  for (let t = pending[0]?.readyAt ?? Infinity; t < Infinity;) {
    for (; next < pending.length && pending[next].readyAt <= t; next++) {
      ready[pending[next].need.kind].add(pending[next]);
      vms.ready(pending[next], true);
      summaries.delete(pending[next].need.kind);
    }
    for (const kind of TOKEN_KINDS) {
      const expired = ready[kind].dropExpired(t);
      for (const p of expired) vms.ready(p, false);
      if (expired.length > 0) summaries.delete(kind);
    }
    let wake = Infinity;
    // At most one change of phase at a given time: the second attempt serves the other kind.
    for (let attempt = 0; attempt < 2; attempt++) {
      const usage = timeline.usageAt(t);
      const active = (kind: TokenKind) => (kind === 'GUEST' ? usage.guests : usage.hypervisors) > 0;
      if (phase === undefined || (!active(phase) && ready[phase].size === 0)) {
        // The kind whose ready jobs can wait the least.
        const kinds = TOKEN_KINDS.filter((k) => ready[k].size > 0);
        phase = kinds.sort((a, b) => waiting(a).guard - waiting(b).guard)[0];
      }
      if (phase === undefined) break;
      const tried = startReady(phase, t);
      wake = Math.min(wake, tried.wake);
      if (tried.started || ready[otherKind(phase)].size === 0) break;
      if (ready[phase].size > 0 && !tried.allHeld && active(phase)) break;
      phase = otherKind(phase);
    }
    t = Math.min(pending[next]?.readyAt ?? Infinity, timeline.nextChange(t), wake);
  }
  return starts;
}

const byLatestStart = (a: Prepared, b: Prepared) => a.latestStart - b.latestStart || a.rank - b.rank;
const longestFirst = (a: Prepared, b: Prepared) => b.job.durationMs - a.job.durationMs || a.rank - b.rank;

/** The ready jobs of one kind, kept sorted both ways so that a start does not sort them again. */
class Ready {
  readonly byLatest: Prepared[] = [];
  readonly byLength: Prepared[] = [];
  /** Sums over the jobs: their durations and their costs, for spanMs() in constant time. */
  private durationMs = 0;
  private io = 0;
  private cpu = 0;

  get size(): number {
    return this.byLatest.length;
  }

  add(p: Prepared): void {
    this.byLatest.splice(
      partitionPoint(this.byLatest, (q) => byLatestStart(q, p) < 0),
      0,
      p,
    );
    this.byLength.splice(
      partitionPoint(this.byLength, (q) => longestFirst(q, p) < 0),
      0,
      p,
    );
    this.count(p, 1);
  }

  remove(p: Prepared): void {
    this.byLatest.splice(
      partitionPoint(this.byLatest, (q) => byLatestStart(q, p) < 0),
      1,
    );
    this.byLength.splice(
      partitionPoint(this.byLength, (q) => longestFirst(q, p) < 0),
      1,
    );
    this.count(p, -1);
  }

  has(p: Prepared): boolean {
    return this.byLatest[partitionPoint(this.byLatest, (q) => byLatestStart(q, p) < 0)] === p;
  }

  /** Drops the jobs that can no longer start by their latest start, and returns them. */
  dropExpired(t: number): Prepared[] {
    const expired = this.byLatest.splice(
      0,
      partitionPoint(this.byLatest, (p) => p.latestStart < t),
    );
    for (const p of expired) {
      this.byLength.splice(
        partitionPoint(this.byLength, (q) => longestFirst(q, p) < 0),
        1,
      );
      this.count(p, -1);
    }
    return expired;
  }

  /**
   * The kind's sustainable concurrency for these jobs: its cap, or fewer when their average cost would
   * exhaust the budget.
   */
  concurrency(host: PlanHost): number {
    const n = this.byLatest.length;
    if (n === 0) return 1;
    const share = (budget: number, total: number) => (budget > 0 && total > 0 ? (budget * n) / total : Infinity);
    const cap = this.byLatest[0].need.kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens;
    return Math.max(
      1,
      Math.min(cap, share(host.budget.ioBytesPerSec, this.io), share(host.budget.cpuPercent, this.cpu)),
    );
  }

  /** How long serving them all would take (estimated): their work at that concurrency, or the gaps between their starts. */
  spanMs(host: PlanHost): number {
    return Math.max(this.durationMs / this.concurrency(host), this.byLatest.length * host.minStartGapMs);
  }

  private count(p: Prepared, sign: 1 | -1): void {
    this.durationMs += sign * p.job.durationMs;
    this.io += sign * p.need.io;
    this.cpu += sign * p.need.cpu;
  }
}

/** Ready jobs of one kind, as the other kind sees them. */
interface Waiting {
  /** The latest time the host can turn to them and still start each by its latest start (estimated). */
  guard: number;
  /** How long serving them all would take (estimated). */
  spanMs: number;
  oldestReadyAt: number;
}

/**
 * Estimates, for ready jobs of one kind: taken by latest start, the work queued before each runs at the
 * kind's sustainable concurrency, and their starts are spaced by the gap. The caller checks.
 */
function summarise(ready: Ready, host: PlanHost): Waiting {
  const { byLatest } = ready;
  if (byLatest.length === 0) return { guard: Infinity, spanMs: 0, oldestReadyAt: Infinity };
  const concurrency = ready.concurrency(host);
  const queued = (i: number, queuedMs: number) => Math.max(queuedMs / concurrency, i * host.minStartGapMs);
  let queuedMs = 0;
  let guard = Infinity;
  let oldestReadyAt = Infinity;
  byLatest.forEach((p, i) => {
    guard = Math.min(guard, p.latestStart - queued(i, queuedMs));
    queuedMs += p.job.durationMs;
    oldestReadyAt = Math.min(oldestReadyAt, p.readyAt);
  });
  return { guard, spanMs: ready.spanMs(host), oldestReadyAt };
}

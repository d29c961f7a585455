/**
 * The jobs of each VM as the phases step (plan-phases.ts) sees them while it runs the host forward: which
 * would push another job of the VM out of its window, and the openings of the favoured ones. Pure.
 *
 * A job of a VM with hourly jobs (a 100-minute file backup beside hourly jobs of 5 minutes) fits only
 * after one of them and before the next one's latest start; when it is long, only right after one that
 * started at the start of its window, on the token that one frees: that is the long job's opening. Served
 * longest first, the hourly job waits for a token with the rest and the opening passes; hour after hour,
 * the long job ends up starting hours late and the night ends with it. The favour-late step
 * (plan-favour-late.ts) favours such jobs one by one: while a favoured job is ready, it starts as soon as
 * it can without pushing another job of its VM out, or the jobs it can follow go first; and a token is
 * kept free for one of those due soon once few of its openings are left.
 */
import type { TokenKind } from '../domain/lease';
import { partitionPoint } from './partition-point';
import type { Prepared } from './types';

/** How far ahead a token is kept free for a job that a favoured job can follow. */
export const RESERVE_MS = 10 * 60_000;

/**
 * The ids of the jobs that fit only right after another job of their VM: those beside a job of the VM
 * whose window meets their own and is shorter than both durations together (an hourly job).
 */
export function gatedJobs(order: readonly Prepared[]): Set<string> {
  const gated = new Set<string>();
  for (const list of byVm(order.filter((p) => !p.unplaceable)).values()) {
    for (const p of list) if (list.some((q) => meet(p, q) && gating(p, q))) gated.add(p.job.id);
  }
  return gated;
}

/** The jobs of each VM, in the order given. */
function byVm(jobs: readonly Prepared[]): Map<string, Prepared[]> {
  const ofVm = new Map<string, Prepared[]>();
  for (const p of jobs) {
    const list = ofVm.get(p.need.vm);
    if (list) list.push(p);
    else ofVm.set(p.need.vm, [p]);
  }
  return ofVm;
}

const span = (q: Prepared) => q.job.windowEnd - q.job.earliestStart;
/** Whether q is another job whose window meets p's. */
const meet = (p: Prepared, q: Prepared) =>
  q !== p && q.job.earliestStart < p.job.windowEnd && p.job.earliestStart < q.job.windowEnd;
/** Whether q's window is too short for both: p fits only before or after q, not around it. */
const gating = (p: Prepared, q: Prepared) => span(q) < p.job.durationMs + q.job.durationMs;

export class VmJobs {
  /** Per VM, its jobs by ready time. */
  private readonly ofVm: Map<string, Prepared[]>;
  /** Per VM, the longest span from a job's ready time to its latest start. */
  private readonly spanOfVm = new Map<string, number>();
  /**
   * The favoured jobs, each with the longest window of the VM's jobs that gate it, or else of those whose
   * windows meet its own: about how often an opening comes (0 if it has no such job).
   */
  private readonly favoured = new Map<Prepared, number>();
  /** Per VM, its favoured jobs ready and not started. */
  private readonly readyFavoured = new Map<string, Set<Prepared>>();

  /**
   * @param pending the jobs to place, by ready time
   * @param started whether a job has a start (placed or pinned)
   * @param favoured the ids of the jobs to favour
   */
  constructor(
    pending: readonly Prepared[],
    private readonly started: (p: Prepared) => boolean,
    favoured: ReadonlySet<string>,
  ) {
    this.ofVm = byVm(pending);
    for (const [vm, list] of this.ofVm)
      this.spanOfVm.set(
        vm,
        list.reduce((most, q) => Math.max(most, q.latestStart - q.readyAt), 0),
      );
    for (const p of pending) {
      if (!favoured.has(p.job.id)) continue;
      const mates = this.ofVm.get(p.need.vm)!.filter((q) => meet(p, q));
      const gates = mates.filter((q) => gating(p, q));
      this.favoured.set(
        p,
        (gates.length > 0 ? gates : mates).reduce((most, q) => Math.max(most, span(q)), 0),
      );
    }
  }

  /** Whether a job of p's VM not started yet (but `followed`) would have to start before p, started at t, ends. */
  pushesOut(p: Prepared, t: number, end: number, followed?: Prepared): boolean {
    const { list, from } = this.from(p.need.vm, t);
    for (let i = from; i < list.length; i++) {
      const q = list[i];
      if (q.readyAt >= end) return false;
      if (q !== p && q !== followed && q.latestStart >= t && q.latestStart < end && !this.started(q)) return true;
    }
    return false;
  }

  /** A job became ready, or left the ready jobs (started or expired). */
  ready(p: Prepared, isReady: boolean): void {
    if (!this.favoured.has(p)) return;
    const vm = p.need.vm;
    const set = this.readyFavoured.get(vm) ?? this.readyFavoured.set(vm, new Set()).get(vm)!;
    if (isReady) set.add(p);
    else set.delete(p);
  }

  /** Whether a favoured job is ready. */
  get waiting(): boolean {
    for (const set of this.readyFavoured.values()) if (set.size > 0) return true;
    return false;
  }

  /** Whether the favoured job's latest start comes within two of its openings. */
  fewOpeningsLeft(p: Prepared, t: number): boolean {
    return p.latestStart - t < 2 * this.favoured.get(p)!;
  }

  /**
   * The jobs of `kind` to try first at t, in planning order, each with the favoured job it serves: a ready
   * favoured job that can start now, and a ready job of its VM after which one could.
   */
  toTryFirst(kind: TokenKind, t: number): Map<Prepared, Prepared> {
    const first = new Map<Prepared, Prepared>();
    for (const p of this.readyOf(kind)) {
      if (!this.pushesOut(p, t, t + p.job.durationMs)) {
        first.set(p, p);
        continue;
      }
      this.jobsToFollow(p, t, false, (q) => {
        first.set(q, p);
        return false;
      });
    }
    return new Map([...first].sort(([a], [b]) => a.rank - b.rank));
  }

  /**
   * The jobs due after t and within RESERVE_MS that favoured jobs of `kind` with few openings left can
   * follow: how many tokens to keep free for them, and when the first is due.
   */
  tokensToReserve(kind: TokenKind, t: number): { count: number; due: number } {
    let count = 0;
    let due = Infinity;
    for (const p of this.readyOf(kind)) {
      if (!this.fewOpeningsLeft(p, t)) continue;
      this.jobsToFollow(p, t, true, (q) => {
        count++;
        due = Math.min(due, q.readyAt);
        return true;
      });
    }
    return { count, due };
  }

  private *readyOf(kind: TokenKind): Generator<Prepared> {
    for (const set of this.readyFavoured.values()) for (const p of set) if (p.need.kind === kind) yield p;
  }

  /**
   * Calls `found` with each job of p's VM, not started, that p could follow: ready by t and started at
   * t, or (`upcoming`) ready after t, within RESERVE_MS, and started at its ready time; until `found` says
   * to stop.
   */
  private jobsToFollow(p: Prepared, t: number, upcoming: boolean, found: (q: Prepared) => boolean): void {
    const { list, from } = this.from(p.need.vm, t);
    const to = upcoming ? t + RESERVE_MS : t;
    for (let i = from; i < list.length && list[i].readyAt <= to; i++) {
      const q = list[i];
      const start = upcoming ? q.readyAt : t;
      const after = start + q.job.durationMs;
      if (
        q === p ||
        (upcoming && q.readyAt <= t) ||
        q.need.kind !== p.need.kind ||
        q.latestStart < start ||
        this.started(q) ||
        after > p.latestStart
      )
        continue;
      if (!this.pushesOut(p, after, after + p.job.durationMs, q) && found(q)) return;
    }
  }

  /** The VM's jobs by ready time, from the first that may still start at t or later. */
  private from(vm: string, t: number): { list: Prepared[]; from: number } {
    const list = this.ofVm.get(vm)!;
    const since = t - this.spanOfVm.get(vm)!;
    return { list, from: partitionPoint(list, (q) => q.readyAt < since) };
  }
}

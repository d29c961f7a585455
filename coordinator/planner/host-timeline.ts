/**
 * The planner's picture of one host over time (planner.ts): the usage placed so far as a step function,
 * each VM's busy intervals and the planned starts, with the checks a new slot must pass. Pure.
 */
import { type TokenKind, otherKind } from '../domain/lease';
import { partitionPoint, segmentAt, splitSegment } from './partition-point';
import { TargetTimeline } from './target-timeline';
import type { Blocker, Need, PlanHost, PlanTarget } from './types';

export const capOf = (kind: TokenKind, host: PlanHost) =>
  kind === 'GUEST' ? host.maxGuestTokens : host.maxHypervisorTokens;

/** The usage of the host from `start` to the next segment's start. */
interface Segment {
  start: number;
  io: number;
  cpu: number;
  guests: number;
  hypervisors: number;
}

interface Conflict {
  blocker: Blocker;
  /** The next start worth trying: every start before it breaks the same rule. */
  retryAt: number;
}

/**
 * What is placed so far: the host's usage as sorted segments (a step function), each VM's busy intervals
 * and the planned starts, so that a start is checked by walking only the segments it would overlap.
 */
export class HostTimeline {
  private readonly segments: Segment[] = [{ start: -Infinity, io: 0, cpu: 0, guests: 0, hypervisors: 0 }];
  /** Per VM, disjoint and by start. */
  private readonly busy = new Map<string, Interval[]>();
  private readonly starts: number[] = [];
  // Where no backup of a kind fits whatever its cost, as disjoint intervals by start: they only grow, so
  // a search jumps over each at once instead of walking its segments.
  /** Per kind, where its backups run: no backup of the other kind fits there. */
  private readonly runs: Record<TokenKind, Interval[]> = { GUEST: [], HYPERVISOR: [] };
  /** Per kind, where its cap is reached. */
  private readonly full: Record<TokenKind, Interval[]> = { GUEST: [], HYPERVISOR: [] };

  /** Per shared target named by a job, its use by other hosts and by this one. */
  private readonly targets = new Map<string, TargetTimeline>();

  constructor(
    private readonly host: PlanHost,
    targets: readonly PlanTarget[] = [],
  ) {
    for (const t of targets) this.targets.set(t.name, new TargetTimeline(t));
  }

  /** The usage at t. */
  usageAt(t: number): Readonly<Segment> {
    return this.segments[this.indexAt(t)];
  }

  /** The first time after t when the usage changes. */
  nextChange(t: number): number {
    return this.segments[this.indexAt(t) + 1]?.start ?? Infinity;
  }

  /**
   * The earliest start in [from, latest] that breaks no rule, if any. Whether a segment can take the
   * backup does not depend on the start, so each segment is looked at once: `ok` is where the run of
   * segments known to take it ends, and a start moved on by the VM or the gap between starts goes on
   * from there.
   */
  earliestStart(need: Need, durationMs: number, from: number, latest: number): number | undefined {
    const segs = this.segments;
    let t = from;
    let ok = this.indexAt(t);
    while (t <= latest) {
      let blocker: Blocker | undefined;
      while (ok < segs.length && segs[ok].start < t + durationMs && !(blocker = this.overload(segs[ok], need))) ok++;
      if (blocker) {
        // Past the whole run of the other kind, or of the cap reached, at once; else past this segment,
        // which always has a successor: the end of what loads it.
        const over =
          blocker === 'other-kind'
            ? this.runs[otherKind(need.kind)]
            : blocker === 'kind-cap'
              ? this.full[need.kind]
              : undefined;
        t = over ? intervalAt(over, segs[ok].start)!.end : segs[ok + 1].start;
        ok = over ? this.indexAt(t) : ok + 1;
        continue;
      }
      const other = this.otherConflict(need, t, durationMs);
      if (!other) return t;
      t = other.retryAt;
      ok = Math.max(ok, this.indexAt(t));
    }
    return undefined;
  }

  /** The rule a backup running over [t, t + durationMs) would break, if any. */
  conflictAt(need: Need, t: number, durationMs: number): Conflict | undefined {
    const segs = this.segments;
    for (let i = this.indexAt(t); i < segs.length && segs[i].start < t + durationMs; i++) {
      const blocker = this.overload(segs[i], need);
      // A loaded segment always has a successor: the end of what loads it.
      if (blocker) return { blocker, retryAt: segs[i + 1].start };
    }
    return this.otherConflict(need, t, durationMs);
  }

  /**
   * conflictAt() for a timeline where nothing starts after t: the usage only falls from t on, so the
   * segment at t is the only one to check.
   */
  conflictNow(need: Need, t: number, durationMs: number): Conflict | undefined {
    const i = this.indexAt(t);
    const blocker = this.overload(this.segments[i], need);
    if (blocker) return { blocker, retryAt: this.segments[i + 1].start };
    return this.otherConflict(need, t, durationMs);
  }

  /** The rules outside the host's usage: the VM's own backups, its shared target and the gap between starts. */
  private otherConflict(need: Need, t: number, durationMs: number): Conflict | undefined {
    const end = t + durationMs;
    const busy = this.busy.get(need.vm) ?? [];
    const last = busy[partitionPoint(busy, (b) => b.start < end) - 1];
    if (last && last.end > t) return { blocker: 'vm-busy', retryAt: last.end };
    const target = need.target ? this.targets.get(need.target) : undefined;
    const full = target?.conflict(need.targetIo ?? 0, t, durationMs);
    if (full !== undefined) return { blocker: 'target-full', retryAt: full };
    const gap = this.host.minStartGapMs;
    if (gap === 0) return undefined;
    let k = partitionPoint(this.starts, (s) => s < t + gap) - 1;
    if (k < 0 || this.starts[k] <= t - gap) return undefined;
    // Past the whole cluster of starts less than a gap apart.
    let retryAt = this.starts[k] + gap;
    while (++k < this.starts.length && this.starts[k] < retryAt + gap) retryAt = this.starts[k] + gap;
    return { blocker: 'start-gap', retryAt };
  }

  /** Takes [start, end) for the backup; `planned` when its start counts for the gap between starts. */
  add(need: Need, start: number, end: number, planned: boolean): void {
    const first = this.split(start);
    const stop = this.split(end);
    const cap = capOf(need.kind, this.host);
    for (let i = first; i < stop; i++) {
      const s = this.segments[i];
      s.io += need.io;
      s.cpu += need.cpu;
      const count = need.kind === 'GUEST' ? ++s.guests : ++s.hypervisors;
      if (count === cap) cover(this.full[need.kind], s.start, this.segments[i + 1].start);
    }
    cover(this.runs[need.kind], start, end);
    if (need.target) this.targets.get(need.target)?.add(need.targetIo ?? 0, start, end);
    const busy = this.busy.get(need.vm) ?? [];
    busy.splice(
      partitionPoint(busy, (b) => b.start < start),
      0,
      { start, end },
    );
    this.busy.set(need.vm, busy);
    if (planned)
      this.starts.splice(
        partitionPoint(this.starts, (s) => s < start),
        0,
        start,
      );
  }

  /** Gives back what add() took with the same arguments. */
  remove(need: Need, start: number, end: number, planned: boolean): void {
    const first = this.split(start);
    const stop = this.split(end);
    const guest = need.kind === 'GUEST';
    for (let i = first; i < stop; i++) {
      const s = this.segments[i];
      s.io -= need.io;
      s.cpu -= need.cpu;
      if (guest) s.guests--;
      else s.hypervisors--;
    }
    // What is left of the kind there is still a run, and still full where it is at the cap.
    uncover(this.full[need.kind], start, end);
    uncover(this.runs[need.kind], start, end);
    if (need.target) this.targets.get(need.target)?.add(need.targetIo ?? 0, start, end, -1);
    const cap = capOf(need.kind, this.host);
    for (let i = first; i < stop; i++) {
      const s = this.segments[i];
      const count = guest ? s.guests : s.hypervisors;
      if (count > 0) cover(this.runs[need.kind], s.start, this.segments[i + 1].start);
      if (count >= cap) cover(this.full[need.kind], s.start, this.segments[i + 1].start);
    }
    const busy = this.busy.get(need.vm) ?? [];
    busy.splice(
      busy.findIndex((b) => b.start === start && b.end === end),
      1,
    );
    if (planned)
      this.starts.splice(
        partitionPoint(this.starts, (s) => s < start),
        1,
      );
  }

  /** The end of the run of `kind` backups going on at t; t if none is. */
  runEnd(kind: TokenKind, t: number): number {
    return intervalAt(this.runs[kind], t)?.end ?? t;
  }

  private overload(s: Segment, need: Need): Blocker | undefined {
    const guest = need.kind === 'GUEST';
    if ((guest ? s.hypervisors : s.guests) > 0) return 'other-kind';
    if ((guest ? s.guests : s.hypervisors) >= capOf(need.kind, this.host)) return 'kind-cap';
    const { ioBytesPerSec, cpuPercent } = this.host.budget;
    if (ioBytesPerSec > 0 && s.io + need.io > ioBytesPerSec) return 'io-budget';
    if (cpuPercent > 0 && s.cpu + need.cpu > cpuPercent) return 'cpu-budget';
    return undefined;
  }

  /** The segment holding t. */
  private indexAt(t: number): number {
    return segmentAt(this.segments, t);
  }

  /** Makes a segment start at t; returns its index. */
  private split(t: number): number {
    return splitSegment(this.segments, t);
  }
}

interface Interval {
  start: number;
  end: number;
}

/** The interval holding t, if any. */
function intervalAt(list: readonly Interval[], t: number): Interval | undefined {
  const i = list[partitionPoint(list, (c) => c.end <= t)];
  return i && i.start <= t ? i : undefined;
}

/** Adds [start, end) to a list of disjoint intervals by start, merging what it overlaps or touches. */
function cover(list: Interval[], start: number, end: number): void {
  const from = partitionPoint(list, (c) => c.end < start);
  let to = from;
  let merged = { start, end };
  for (; to < list.length && list[to].start <= end; to++) {
    merged = { start: Math.min(merged.start, list[to].start), end: Math.max(merged.end, list[to].end) };
  }
  list.splice(from, to - from, merged);
}

/** Takes [start, end) out of a list of disjoint intervals by start. */
function uncover(list: Interval[], start: number, end: number): void {
  const from = partitionPoint(list, (c) => c.end <= start);
  let to = from;
  const kept: Interval[] = [];
  for (; to < list.length && list[to].start < end; to++) {
    if (list[to].start < start) kept.push({ start: list[to].start, end: start });
    if (list[to].end > end) kept.push({ start: end, end: list[to].end });
  }
  list.splice(from, to - from, ...kept);
}

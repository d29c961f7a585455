/**
 * One shared target's use over time as a host's plan sees it (host-timeline.ts): the other hosts' share
 * (PlanTarget.others) plus this host's slots, as a step function of backups and I/O, with the check a new
 * slot must pass. Unlike the host's own usage, the others' may rise after any start, so every check walks
 * the whole interval. Pure.
 */
import { segmentAt, splitSegment } from './partition-point';
import type { PlanTarget } from './types';

interface Segment {
  start: number;
  count: number;
  io: number;
}

export class TargetTimeline {
  private readonly segments: Segment[] = [{ start: -Infinity, count: 0, io: 0 }];

  constructor(private readonly target: PlanTarget) {
    for (const u of target.others) this.add(u.io, u.start, u.end);
  }

  /**
   * Where a backup holding `io` of the target over [t, t + durationMs) would overload it: the next start
   * worth trying (the end of the first full segment), or undefined if it fits.
   */
  conflict(io: number, t: number, durationMs: number): number | undefined {
    const { maxConcurrent, ioBytesPerSec } = this.target;
    const segs = this.segments;
    for (let i = segmentAt(segs, t); i < segs.length && segs[i].start < t + durationMs; i++) {
      const s = segs[i];
      // A loaded segment always has a successor: the end of what loads it.
      if (s.count >= maxConcurrent || (ioBytesPerSec > 0 && s.io + io > ioBytesPerSec)) return segs[i + 1].start;
    }
    return undefined;
  }

  /** Takes (sign 1) or gives back (sign -1) a backup's share over [start, end). */
  add(io: number, start: number, end: number, sign = 1): void {
    const first = splitSegment(this.segments, start);
    const stop = splitSegment(this.segments, end);
    for (let i = first; i < stop; i++) {
      this.segments[i].count += sign;
      this.segments[i].io += sign * io;
    }
  }
}

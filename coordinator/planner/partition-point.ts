/** Binary search over sorted lists, and the step functions of the planner's timelines built on it. Pure. */

/** The number of leading items for which `before` holds; it must hold for a prefix of `items`. */
export function partitionPoint<T>(items: readonly T[], before: (item: T) => boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(items[mid])) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of the segment of a step function (segments by start, the first at -Infinity) that holds t. */
export function segmentAt(segments: readonly { start: number }[], t: number): number {
  return partitionPoint(segments, (s) => s.start <= t) - 1;
}

/** Makes a segment start at t, a copy of the one that held t; returns its index. */
export function splitSegment<S extends { start: number }>(segments: S[], t: number): number {
  const i = segmentAt(segments, t);
  if (segments[i].start === t) return i;
  segments.splice(i + 1, 0, { ...segments[i], start: t });
  return i + 1;
}

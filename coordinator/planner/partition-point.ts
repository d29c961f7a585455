/** Binary search over a sorted list, shared by the planner's timelines. Pure. */

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

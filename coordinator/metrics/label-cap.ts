/**
 * Bounds a label's values: the first `max` distinct values are kept, every later one is reported as
 * `other`. VM and job names come from agents and configuration, so they are bounded already; the cap is
 * the guard against a misbehaving caller inventing names, which would otherwise grow Prometheus's series
 * (and this process's memory) without end.
 */
export const OTHER = 'other';

export class LabelCap {
  private readonly seen = new Set<string>();

  constructor(readonly max: number) {}

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return OTHER;
    this.seen.add(value);
    return value;
  }
}

/**
 * Time as an input. Domain code takes a `Clock` and never reads the system time itself, so tests drive it
 * with a fake clock and no sleeps.
 */

export interface Clock {
  /**
   * Milliseconds on a monotonic clock anchored to the Unix epoch at process start. It never jumps when the
   * wall clock is set, which is what leases need; it reads like Unix time, which is what slots need.
   */
  now(): number;
}

/** The process's monotonic clock: wall time at start plus monotonic time since. */
export const systemClock: Clock = {
  now: () => Math.floor(performance.timeOrigin + performance.now()),
};

/** A clock that only moves when told to, for tests and simulations. */
export class ManualClock implements Clock {
  constructor(private current = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    this.current += ms;
  }

  set(ms: number): void {
    this.current = ms;
  }
}

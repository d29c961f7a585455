/**
 * A CPU limit without cgroups: the backup's process group runs for a share of every period and is stopped
 * (SIGSTOP) for the rest. The share is the budget divided by the cores the group keeps busy while it runs,
 * which is measured as it goes: a single-threaded job at 20 % of a core runs 20 ms of every 100; one
 * that keeps two cores busy runs 10 ms; one that mostly waits for the disk is hardly ever stopped.
 */

/** The period, ms: short enough that a stopped backup holds no lock for long, long enough to cost little. */
export const DUTY_PERIOD_MS = 100;
/** The shortest run phase, as a share of the period: shorter ones are lost in timer slack. */
const MIN_DUTY = 0.02;
/** Measure the cores used while running every this many periods. */
const MEASURE_EVERY_PERIODS = 10;
/** Measurements over less running time than this are too coarse to act on, ms (CPU time comes in 10 ms ticks). */
const MIN_MEASURED_RUN_MS = 200;

/** The share of each period the group may run to use `cpuPercent` % of one core, when it keeps `coresWhileRunning` busy while running. */
export function dutyFraction(cpuPercent: number, coresWhileRunning: number): number {
  if (cpuPercent <= 0) return 1;
  const wanted = cpuPercent / 100 / Math.max(coresWhileRunning, 1e-6);
  return Math.min(1, Math.max(MIN_DUTY, wanted));
}

export interface DutyCycleOptions {
  /** Lets the group run (SIGCONT) or stops it (SIGSTOP). Must not throw. */
  setRunning(running: boolean): void;
  /** CPU seconds the group has used so far (cumulative). */
  cpuSeconds(): number;
  /** Monotonic ms; default performance.now. */
  now?: () => number;
  periodMs?: number;
}

export class DutyCycle {
  private cpuPercent = 0;
  private active = false;
  private running = true;
  private timer?: NodeJS.Timeout;
  /** Cores the group keeps busy while it runs; one until measured. */
  private cores = 1;
  private periods = 0;
  private runStartedAt = 0;
  private runMs = 0;
  private windowCpu = 0;
  /** Running time the group is owed (positive) or has had too much of (negative), ms. */
  private owedMs = 0;
  private readonly now: () => number;
  private readonly periodMs: number;

  constructor(private readonly o: DutyCycleOptions) {
    this.now = o.now ?? (() => performance.now());
    this.periodMs = o.periodMs ?? DUTY_PERIOD_MS;
  }

  /** The share of the period the group runs now. */
  get duty(): number {
    return dutyFraction(this.cpuPercent, this.cores);
  }

  /** Starts cycling towards `cpuPercent` % of one core, or changes the target of the cycle under way. */
  start(cpuPercent: number): void {
    this.cpuPercent = cpuPercent;
    if (this.active) return;
    this.active = true;
    this.periods = 0;
    this.runMs = 0;
    this.owedMs = 0;
    this.runStartedAt = this.now(); // it runs now: start() is only called on a running group
    this.windowCpu = this.o.cpuSeconds();
    this.period();
  }

  /** Stops cycling and leaves the group running. */
  stop(): void {
    this.active = false;
    clearTimeout(this.timer);
    if (!this.running) this.set(true);
  }

  private set(running: boolean): void {
    if (running) this.runStartedAt = this.now();
    else this.runMs += this.now() - this.runStartedAt;
    this.running = running;
    this.o.setRunning(running);
  }

  private period(): void {
    if (!this.active) return;
    const periodStart = this.now();
    const duty = this.duty;
    // The next period is timed from this one's start, so that late timers do not stretch it.
    const untilNext = () => Math.max(0, periodStart + this.periodMs - this.now());
    const next = () => {
      if (this.running) {
        this.runMs += this.now() - this.runStartedAt;
        this.runStartedAt = this.now();
      }
      if (++this.periods % MEASURE_EVERY_PERIODS === 0) this.measure();
      this.period();
    };
    if (duty >= 1) {
      if (!this.running) this.set(true);
      this.owedMs = 0;
      this.timer = this.after(this.periodMs, next);
      return;
    }
    // Timers take whole milliseconds and fire late: what a run phase got more or less than its share is
    // taken from or given to the next ones, so that the running time adds up to the duty over time.
    const wanted = duty * this.periodMs;
    const planned = Math.round(wanted + this.owedMs);
    if (planned <= 0) {
      this.owedMs += wanted;
      if (this.running) this.set(false);
      this.timer = this.after(untilNext(), next);
      return;
    }
    if (!this.running) this.set(true);
    const runStart = this.now();
    this.timer = this.after(planned, () => {
      this.set(false);
      this.owedMs = Math.min(this.periodMs, Math.max(-this.periodMs, this.owedMs + wanted - (this.now() - runStart)));
      this.timer = this.after(untilNext(), next);
    });
  }

  /** Re-estimates the cores used while running, once enough running time has passed to tell. */
  private measure(): void {
    if (this.runMs < MIN_MEASURED_RUN_MS) return;
    const cpu = this.o.cpuSeconds();
    const measured = ((cpu - this.windowCpu) * 1_000) / this.runMs;
    // More cores: tighten at once. Fewer: halfway, so that one window of I/O waits does not open it wide.
    this.cores = measured > this.cores ? measured : (this.cores + measured) / 2;
    this.windowCpu = cpu;
    this.runMs = 0;
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }
}

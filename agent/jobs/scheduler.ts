/**
 * When the agent's jobs are due: cron schedules (5 fields, or 6 with seconds, in the guest's local time)
 * turned into occurrences with their window, and a timer that calls back at each occurrence.
 *
 * Occurrences are wall-clock times, so the scheduler takes a wall clock and never sleeps longer than
 * `maxSleepMs` at once: after the clock is stepped or the guest was suspended it notices within that time.
 * Occurrences before the agent started are not caught up on (like cron, unlike anacron).
 */
import type { Clock } from '../../common/util/clock';
import { formatDuration } from '../../common/util/duration';
import type { Logger } from '../../common/util/log';
import { CronSchedule, parseCron } from '../../common/util/cron';

export interface Occurrence {
  /** The scheduled time, Unix ms. */
  scheduledAtUnixMs: number;
  /** The job may start until then; also the end of its window. */
  windowEndUnixMs: number;
}

export interface ScheduledJob {
  name: string;
  schedule: string;
  windowMs: number;
}

/**
 * Checks a cron expression: 5 fields (minute first), 6 fields (second first) or an alias such as @daily
 * (syntax in ./cron). Throws an Error saying what is wrong.
 */
export function parseSchedule(expression: string, seed = 'headroom'): void {
  parseCron(expression, seed);
}

/**
 * The first occurrence of `expression` strictly after `afterUnixMs`. `seed` makes `H` fields stable per job.
 * Throws when the expression is invalid (see parseSchedule).
 */
export function nextOccurrence(expression: string, afterUnixMs: number, seed = 'headroom'): number {
  return parseCron(expression, seed).next(afterUnixMs);
}

/** The latest occurrence of `expression` at or before `atUnixMs`. Throws when the expression is invalid. */
export function previousOccurrence(expression: string, atUnixMs: number, seed = 'headroom'): number {
  return parseCron(expression, seed).prev(atUnixMs);
}

/** The occurrence at `scheduledAtUnixMs` of a job with `windowMs`. */
export function occurrenceAt(scheduledAtUnixMs: number, windowMs: number): Occurrence {
  return { scheduledAtUnixMs, windowEndUnixMs: scheduledAtUnixMs + windowMs };
}

export interface JobSchedulerOptions<J extends ScheduledJob> {
  jobs: readonly J[];
  /** Wall clock (cron times are wall-clock times). */
  clock: Clock;
  log: Logger;
  onDue(job: J, occurrence: Occurrence): void;
  /** Longest single sleep, ms; default 60000. */
  maxSleepMs?: number;
}

interface JobState<J> {
  job: J;
  cron: CronSchedule;
  next: number;
  timer?: NodeJS.Timeout;
}

/** Calls `onDue` at each occurrence of each job, while started. */
export class JobScheduler<J extends ScheduledJob> {
  private readonly states: JobState<J>[] = [];
  private running = false;

  constructor(private readonly options: JobSchedulerOptions<J>) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const now = this.options.clock.now();
    for (const job of this.options.jobs) {
      const cron = parseCron(job.schedule, job.name);
      const state: JobState<J> = { job, cron, next: cron.next(now) };
      this.states.push(state);
      this.options.log.debug('job scheduled', { job: job.name, next: new Date(state.next).toISOString() });
      this.arm(state);
    }
  }

  stop(): void {
    this.running = false;
    for (const s of this.states) clearTimeout(s.timer);
    this.states.length = 0;
  }

  /** The next occurrence of each job, Unix ms. */
  nextRuns(): { job: string; atUnixMs: number }[] {
    return this.states.map((s) => ({ job: s.job.name, atUnixMs: s.next }));
  }

  private arm(state: JobState<J>): void {
    if (!this.running) return;
    const { job, cron } = state;
    const log = this.options.log;
    const now = this.options.clock.now();
    const wait = state.next - now;
    if (wait > 0) {
      state.timer = setTimeout(() => this.arm(state), Math.min(wait, this.options.maxSleepMs ?? 60_000));
      return;
    }
    // Woken late (suspend, stepped clock), later occurrences may have passed too: the latest one is the one to run.
    const latest = Math.max(state.next, cron.prev(now));
    const occurrence = occurrenceAt(latest, job.windowMs);
    const iso = (ms: number) => new Date(ms).toISOString();
    if (now < occurrence.windowEndUnixMs) {
      if (latest > state.next)
        log.warn('woke late: earlier scheduled runs were missed', { job: job.name, firstMissed: iso(state.next) });
      try {
        this.options.onDue(job, occurrence);
      } catch (err) {
        log.error('could not start a scheduled job', { job: job.name, error: err as Error });
      }
    } else {
      log.error('missed a scheduled run: the agent was not running or the clock jumped past its window', {
        job: job.name,
        scheduledAt: iso(latest),
        firstMissed: latest > state.next ? iso(state.next) : undefined,
        window: formatDuration(job.windowMs),
      });
    }
    // After both this occurrence and now: never the same one twice, even if the clock steps back.
    state.next = cron.next(Math.max(now, latest));
    this.arm(state);
  }
}

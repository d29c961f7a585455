/**
 * Starts the coordinator's own hypervisor backups at their planned slots: every few seconds it looks at
 * the plan the host's grants follow (plan-keeper.ts; a cluster member reads the leader's,
 * cluster/leader-plan.ts) and, for each HYPERVISOR slot that is due and whose job has a driver
 * (coordinator.yaml), has the backup runner start it with the slot's window end, so that its token request
 * is the planned run's and is granted as planned. A planned run that fails is run
 * again, as many times as its job's `retries` say, `retryDelay` after the failure, while that still fits
 * its window. Which slots are due, and when a failed run is retried, are pure functions of the plan, the
 * runs and the time.
 */
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import { RETRY_DELAY_MS } from './backup-driver';
import type { BackupRunView, BackupRunner } from './backup-runner';
import type { HypervisorJob } from './hypervisor-schedule';
import type { ViewSlot } from '../planning/plan-view';

/** How often due slots are looked for: a planned start is late by at most this. */
const TICK_MS = 5_000;

/**
 * The slots to start now: HYPERVISOR slots whose start has come and whose window is still open, of jobs
 * the coordinator runs itself, not started before (slot ids are the same in every replan).
 */
export function dueSlots(
  slots: readonly ViewSlot[],
  jobs: readonly Pick<HypervisorJob, 'name' | 'vms' | 'driver'>[],
  started: ReadonlySet<string>,
  now: number,
  resolve: (vm: string) => string = (vm) => vm,
): ViewSlot[] {
  // Slots name the VM's identity (plan-keeper.ts), jobs the name they were written with.
  const runs = (s: ViewSlot) =>
    jobs.some((j) => j.driver && j.name === s.job && j.vms.some((v) => resolve(v) === s.vm));
  return slots.filter(
    (s) => s.kind === 'HYPERVISOR' && s.start <= now && now < s.windowEnd && !started.has(s.id) && runs(s),
  );
}

/**
 * When to run a planned slot again after its run ended: undefined unless the run failed (a cancel is not
 * a failure), the job has retries left after `tries` runs, and a run started then, taking the slot's
 * planned duration, still ends by the slot's window end.
 */
export function retryAt(
  run: Pick<BackupRunView, 'state' | 'endedAtMs' | 'cancelRequested'>,
  tries: number,
  driver: Pick<NonNullable<HypervisorJob['driver']>, 'retries' | 'retryDelayMs'>,
  slot: Pick<ViewSlot, 'start' | 'end' | 'windowEnd'>,
): number | undefined {
  if (run.state !== 'FAILED' || run.cancelRequested || run.endedAtMs === undefined || tries > (driver.retries ?? 0))
    return undefined;
  const at = run.endedAtMs + (driver.retryDelayMs ?? RETRY_DELAY_MS);
  return at + (slot.end - slot.start) <= slot.windowEnd ? at : undefined;
}

export interface HypervisorSchedulerDeps {
  /** The plan the host's grants follow: the plan keeper's, or in a cluster the leader's (cluster/leader-plan.ts). */
  plans: { current(host: string): { slots: readonly ViewSlot[] } | undefined };
  runner: Pick<BackupRunner, 'start' | 'list'>;
  jobs: readonly HypervisorJob[];
  /** The coordinator's own host: the one its hypervisor schedule is for. */
  host: string;
  /** A VM's identity (placement-monitor.ts). Default: itself. */
  resolveVm?: (vm: string) => string;
  clock: Clock;
  log: Logger;
  tickMs?: number;
}

export class HypervisorScheduler {
  /** Slot ids started (or found impossible to start), so that each planned run is started once. */
  private readonly started = new Set<string>();
  /** The last run of each slot started, and how many runs it had, until it ends without a retry. */
  private readonly runs = new Map<string, { slot: ViewSlot; runId: string; tries: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: HypervisorSchedulerDeps) {}

  start(): void {
    if (!this.deps.jobs.some((j) => j.driver)) return;
    this.timer = setInterval(() => this.tick(), this.deps.tickMs ?? TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  tick(): void {
    const plan = this.deps.plans.current(this.deps.host);
    if (!plan) return;
    const now = this.deps.clock.now();
    for (const slot of dueSlots(plan.slots, this.deps.jobs, this.started, now, this.deps.resolveVm)) {
      this.started.add(slot.id);
      this.run(slot, 1);
    }
    this.retry(now);
    // Forget slots whose window has closed: their ids will not come back.
    const live = new Set(plan.slots.map((s) => s.id));
    for (const id of this.started) if (!live.has(id)) this.started.delete(id);
  }

  /** Starts a slot's run, its `tries`-th. */
  private run(slot: ViewSlot, tries: number): void {
    const { log, runner } = this.deps;
    try {
      const run = runner.start(slot.vm, { job: slot.job, windowEndMs: slot.windowEnd });
      this.runs.set(slot.id, { slot, runId: run.runId, tries });
      if (tries === 1)
        log.info('started a planned hypervisor backup', { vm: slot.vm, job: slot.job, runId: run.runId });
      else
        log.info('retrying a planned hypervisor backup that failed', {
          vm: slot.vm,
          job: slot.job,
          runId: run.runId,
          attempt: tries,
        });
    } catch (e) {
      // A run of the VM still going (started by hand, or the last one overran): this slot is skipped, not queued.
      this.runs.delete(slot.id);
      log.warn('could not start a planned hypervisor backup', {
        vm: slot.vm,
        job: slot.job,
        error: (e as Error).message,
      });
    }
  }

  /** Runs again the failed runs whose retry is due; forgets the runs that ended for good. */
  private retry(now: number): void {
    for (const [id, { slot, runId, tries }] of this.runs) {
      const run = this.deps.runner.list(slot.vm).find((r) => r.runId === runId);
      if (run?.state === 'RUNNING') continue;
      const driver = this.deps.jobs.find((j) => j.name === slot.job)?.driver;
      const at = run && driver ? retryAt(run, tries, driver, slot) : undefined;
      if (at === undefined) this.runs.delete(id);
      else if (now >= at) this.run(slot, tries + 1);
    }
  }
}

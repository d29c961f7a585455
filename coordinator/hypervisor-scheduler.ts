/**
 * Starts the coordinator's own hypervisor backups at their planned slots: every few seconds it looks at
 * the plan the host's grants follow (plan-keeper.ts) and, for each HYPERVISOR slot that is due and whose
 * job has a driver (coordinator.yaml), has the backup runner start it with the slot's window end, so that
 * its token request is the planned run's and is granted as planned. Which slots are due is decided by a
 * pure function of the plan and the time.
 */
import type { Clock } from '../common/clock';
import type { Logger } from '../common/log';
import type { BackupRunner } from './backup-runner';
import type { HypervisorJob } from './hypervisor-schedule';
import type { PlanKeeper } from './plan-keeper';
import type { ViewSlot } from './plan-view';

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
): ViewSlot[] {
  const runs = (s: ViewSlot) => jobs.some((j) => j.driver && j.name === s.job && j.vms.includes(s.vm));
  return slots.filter((s) => s.kind === 'HYPERVISOR' && s.start <= now && now < s.windowEnd && !started.has(s.id) && runs(s));
}

export interface HypervisorSchedulerDeps {
  plans: Pick<PlanKeeper, 'current'>;
  runner: Pick<BackupRunner, 'start'>;
  jobs: readonly HypervisorJob[];
  /** The coordinator's own host: the one its hypervisor schedule is for. */
  host: string;
  clock: Clock;
  log: Logger;
  tickMs?: number;
}

export class HypervisorScheduler {
  /** Slot ids started (or found impossible to start), so that each planned run is started once. */
  private readonly started = new Set<string>();
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
    for (const slot of dueSlots(plan.slots, this.deps.jobs, this.started, now)) {
      this.started.add(slot.id);
      try {
        const run = this.deps.runner.start(slot.vm, { job: slot.job, windowEndMs: slot.windowEnd });
        this.deps.log.info('started a planned hypervisor backup', { vm: slot.vm, job: slot.job, runId: run.runId });
      } catch (e) {
        // A run of the VM still going (started by hand, or the last one overran): this slot is skipped, not queued.
        this.deps.log.warn('could not start a planned hypervisor backup', { vm: slot.vm, job: slot.job, error: (e as Error).message });
      }
    }
    // Forget slots whose window has closed: their ids will not come back.
    const live = new Set(plan.slots.map((s) => s.id));
    for (const id of this.started) if (!live.has(id)) this.started.delete(id);
  }
}

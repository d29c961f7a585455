/**
 * How long the coordinator's event loop stalls while a host is replanned: the storm bench's day, declared
 * as the agents and the host's schedule would declare it (cron schedules, windows, durations, costs),
 * planned by buildPlanView on the event loop itself, then by the planning thread (coordinator/planning/plan-worker.ts)
 * as the coordinator does. The loop's delay is read with perf_hooks.monitorEventLoopDelay.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { DeclaredJob, PlanViewInput } from '../coordinator/planning/plan-view';
import { buildPlanView } from '../coordinator/planning/plan-view';
import { PlanWorker } from '../coordinator/planning/plan-worker';
import { DEFAULT_POLICY } from '../coordinator/domain/policy';
import type { PlanHost } from '../coordinator/planner/types';
import type { ScenarioJob } from './storm-scenario';

export interface LoopStall {
  /** The longest and the 99th percentile delay of the event loop while planning, ms. */
  maxMs: number;
  p99Ms: number;
  /** Plans made. */
  plans: number;
}

/**
 * The scenario's day as declarations: one job per VM and type, its cron schedule read from its first
 * occurrence (hourly jobs at their minute every hour, the others at their time every day). Cron times are
 * local: the day is planned at the same local times as the scenario's UTC ones.
 */
export function declaredDay(jobs: readonly ScenarioJob[], host: PlanHost, now: number): PlanViewInput {
  const byVm = new Map<string, Map<string, DeclaredJob & { kind: ScenarioJob['kind'] }>>();
  for (const j of jobs) {
    const name = j.id.slice(j.vm.length + 1, j.id.indexOf('@'));
    const at = new Date(j.earliestStart);
    const [minute, hour] = [at.getUTCMinutes(), at.getUTCHours()];
    const ofVm = byVm.get(j.vm) ?? byVm.set(j.vm, new Map()).get(j.vm)!;
    if (ofVm.has(name)) continue;
    ofVm.set(name, {
      kind: j.kind,
      name,
      schedule: j.type === 'hourly' ? `${minute} * * * *` : `${minute} ${hour} * * *`,
      windowMs: j.windowEnd - j.earliestStart,
      expectedDurationMs: j.durationMs,
      declaredCost: j.cost,
      priority: j.priority,
    });
  }
  const declared = [...byVm].flatMap(([vm, ofVm]) =>
    (['GUEST', 'HYPERVISOR'] as const).map((kind) => ({
      vm,
      kind,
      jobs: [...ofVm.values()].filter((d) => d.kind === kind),
    })),
  );
  const policy = {
    ...DEFAULT_POLICY,
    maxGuestTokens: host.maxGuestTokens,
    maxHypervisorTokens: host.maxHypervisorTokens,
    hostBudgetIoBytesPerSec: host.budget.ioBytesPerSec,
    hostBudgetCpuPercent: host.budget.cpuPercent,
    minStartGapMs: host.minStartGapMs,
  };
  // The instant whose wall-clock time here is the scenario's UTC one, so that the cron times fall where its jobs do.
  const localNow = now + new Date(now).getTimezoneOffset() * 60_000;
  return {
    now: localNow,
    horizonMs: 24 * 3_600_000,
    policy,
    declared: declared.filter((d) => d.jobs.length > 0),
    running: [],
    ended: [],
  };
}

/** Plans `input` `plans` times, one after the other, on this thread and then on the planning thread. */
export async function eventLoopWhilePlanning(
  input: PlanViewInput,
  plans: number,
): Promise<{ onLoop: LoopStall; onThread: LoopStall; slots: number }> {
  const measure = async (plan: () => Promise<unknown>): Promise<LoopStall> => {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    for (let i = 0; i < plans; i++) {
      await plan();
      await yieldToLoop();
    }
    delay.disable();
    return { maxMs: delay.max / 1e6, p99Ms: delay.percentile(99) / 1e6, plans };
  };
  // Also the on-loop runs' warm-up, as the thread's first call is its own.
  const slots = buildPlanView(input).slots.length;
  const onLoop = await measure(async () => buildPlanView(input));
  const worker = new PlanWorker();
  try {
    await worker.plan(input); // the thread's start and its first, compiling run
    const onThread = await measure(() => worker.plan(input));
    return { onLoop, onThread, slots };
  } finally {
    await worker.close();
  }
}

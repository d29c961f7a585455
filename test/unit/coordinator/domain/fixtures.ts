/** Builders shared by the domain tests: a lessor on a manual clock with predictable token ids, plan jobs. */
import { ManualClock } from '../../../../common/util/clock';
import type { AcquireInput } from '../../../../coordinator/domain/lease';
import { Lessor, type LessorOptions } from '../../../../coordinator/domain/lessor';
import type { PlanJob } from '../../../../coordinator/planner/types';

export const T0 = Date.UTC(2026, 10, 25, 1, 0, 0);

export function counterIds(prefix = 'tok') {
  let n = 0;
  return { newId: () => `${prefix}-${++n}` };
}

export function newLessor(options: LessorOptions = {}) {
  const clock = new ManualClock(T0);
  const lessor = new Lessor(clock, counterIds(), options);
  return { clock, lessor };
}

let requests = 0;
export function req(partial: Partial<AcquireInput> & Pick<AcquireInput, 'kind' | 'vm'>): AcquireInput {
  return {
    requestId: `req-${++requests}`,
    host: 'h1',
    job: 'nightly',
    expectedDurationMs: 60_000,
    latestStart: 0,
    windowEnd: 0,
    priority: 0,
    ttlMs: 0,
    ...partial,
  };
}

/** A GUEST job of its own VM, due from T0 within 4 hours, 30 minutes long, declaring no cost. */
export function planJob(id: string, partial: Partial<PlanJob> = {}): PlanJob {
  return {
    id,
    kind: 'GUEST',
    vm: id,
    earliestStart: T0,
    windowEnd: T0 + 4 * 3_600_000,
    durationMs: 30 * 60_000,
    cost: { ioBytesPerSec: 0, cpuPercent: 0 },
    priority: 0,
    ...partial,
  };
}

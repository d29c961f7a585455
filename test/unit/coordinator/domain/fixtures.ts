/** Builders shared by the domain tests: a lessor on a manual clock with predictable token ids. */
import { ManualClock } from '../../../../common/clock';
import type { AcquireInput } from '../../../../coordinator/domain/lease';
import { Lessor, type LessorOptions } from '../../../../coordinator/domain/lessor';

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

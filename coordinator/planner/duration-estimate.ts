/**
 * How long the planner expects a job to take: learnt from its recent runs instead of trusting the declared
 * duration forever. Once there are enough runs, a high percentile of the most recent ones, so that a slot
 * holds the job's usual slow nights and not only its average; before that, the percentile of the runs so
 * far blended with the declared duration, moving toward the runs as they accumulate.
 */
import { InvalidArgumentError } from '../domain/errors';

export interface DurationEstimateOptions {
  /** How many of the most recent runs count. Default 20: about three weeks of a nightly job. */
  recentRuns?: number;
  /** The percentile of those runs, above 0 and at most 1. Default 0.9. */
  percentile?: number;
  /** Runs needed before the declared duration stops counting; fewer are blended with it. Default 5. */
  runsToTrust?: number;
  /** The estimate when nothing is declared and nothing has run, in ms. Default 1 h. */
  unknownMs?: number;
}

export type CompiledDurationEstimateOptions = Readonly<Required<DurationEstimateOptions>>;

/**
 * Applies the defaults and validates.
 * @throws InvalidArgumentError naming the first field out of range.
 */
export function compileDurationEstimateOptions(options: DurationEstimateOptions = {}): CompiledDurationEstimateOptions {
  const o = { recentRuns: 20, percentile: 0.9, runsToTrust: 5, unknownMs: 3_600_000, ...options };
  const problems: string[] = [];
  if (!Number.isSafeInteger(o.recentRuns) || o.recentRuns < 1)
    problems.push(`recentRuns: must be an integer of at least 1, got ${o.recentRuns}`);
  if (!(o.percentile > 0 && o.percentile <= 1))
    problems.push(`percentile: must be above 0 and at most 1, got ${o.percentile}`);
  if (!Number.isSafeInteger(o.runsToTrust) || o.runsToTrust < 1 || o.runsToTrust > o.recentRuns) {
    problems.push(`runsToTrust: must be an integer from 1 to recentRuns (${o.recentRuns}), got ${o.runsToTrust}`);
  }
  if (!(Number.isFinite(o.unknownMs) && o.unknownMs > 0))
    problems.push(`unknownMs: must be above 0, got ${o.unknownMs}`);
  if (problems.length > 0) throw new InvalidArgumentError('durationEstimate', problems.join('; '));
  return Object.freeze(o);
}

const DEFAULTS = compileDurationEstimateOptions();

/**
 * The expected duration of a job's next run, in whole ms (at least 1).
 * @param declaredMs what the job declares; 0 when it declares nothing.
 * @param recentRunsMs durations of its completed runs, oldest first.
 * @throws InvalidArgumentError if a duration is negative or not finite.
 */
export function estimateDurationMs(
  declaredMs: number,
  recentRunsMs: readonly number[],
  options: CompiledDurationEstimateOptions = DEFAULTS,
): number {
  if (!(Number.isFinite(declaredMs) && declaredMs >= 0))
    throw new InvalidArgumentError('declaredMs', `must be 0 or more, got ${declaredMs}`);
  const bad = recentRunsMs.find((d) => !(Number.isFinite(d) && d >= 0));
  if (bad !== undefined) throw new InvalidArgumentError('recentRunsMs', `durations must be 0 or more, got ${bad}`);

  const runs = recentRunsMs.slice(-options.recentRuns);
  if (runs.length === 0) return whole(declaredMs > 0 ? declaredMs : options.unknownMs);
  const learnt = percentile(runs, options.percentile);
  if (declaredMs === 0 || runs.length >= options.runsToTrust) return whole(learnt);
  const weight = runs.length / options.runsToTrust;
  // Kept between the two: in floating point the blend of 14 and 14 is 14.000000000000002, which rounds up to 15.
  const blend = (1 - weight) * declaredMs + weight * learnt;
  return whole(Math.min(Math.max(blend, Math.min(declaredMs, learnt)), Math.max(declaredMs, learnt)));
}

/** Nearest-rank percentile: the smallest run that at least that share of the runs do not exceed. */
function percentile(runs: readonly number[], p: number): number {
  const sorted = [...runs].sort((a, b) => a - b);
  // The epsilon keeps a product such as 0.7 × 10 = 7.000000000000001 from rounding up a rank.
  return sorted[Math.max(0, Math.ceil(p * sorted.length - 1e-9) - 1)];
}

const whole = (ms: number) => Math.max(1, Math.ceil(ms));

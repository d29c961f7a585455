/**
 * Turns wire requests into domain inputs, refusing bad input with InvalidArgumentError naming the field
 * (the wire name, as in the .proto). Nothing reaches the domain unvalidated.
 */
import { InvalidArgumentError } from '../domain/errors';
import { type AcquireInput, type Consistency, MAX_NAME_LENGTH, NAME_PATTERN, type Outcome } from '../domain/lease';
import { LIMITS, type HostPolicy, completePolicy, policyWireName } from '../domain/policy';
import * as enums from '../../proto/enums';
import type * as v1 from '../../proto/generated/headroom/v1';

const MAX_TEXT = 1024;
const MAX_DURATION_MS = 7 * 24 * 3_600_000;
const MAX_PRIORITY = 1000;
// Far enough to reject garbage (and seconds passed as milliseconds) without limiting real schedules.
const MAX_UNIX_MS = Date.UTC(2200, 0, 1);

/** The wire (snake_case) name of a decoded field, which proto-loader spells in camelCase. */
export function wireName(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function name(field: string, value: string, required = true): string {
  if (value === '') {
    if (required) throw new InvalidArgumentError(field, 'is required');
    return value;
  }
  if (value.length > MAX_NAME_LENGTH) throw new InvalidArgumentError(field, `is longer than ${MAX_NAME_LENGTH} characters`);
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidArgumentError(field, 'may hold only letters, digits and . _ : @ - and must start with a letter or digit');
  }
  return value;
}

export function text(field: string, value: string, max = MAX_TEXT): string {
  if (value.length > max) throw new InvalidArgumentError(field, `is longer than ${max} characters`);
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) throw new InvalidArgumentError(field, 'holds control characters');
  return value;
}

export function intIn(field: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** A wire enum's value as the domain names it; UNSPECIFIED (and a value this build does not know) is refused. */
export function enumName<S extends string>(field: string, e: enums.WireEnum<string, S>, value: unknown): S {
  const name = e.fromWire(value);
  if (name === undefined) {
    const wire = e.names.map((n) => e.toWire(n));
    throw new InvalidArgumentError(field, `must be ${wire.slice(0, -1).join(', ')} or ${wire.at(-1)}, got ${JSON.stringify(value)}`);
  }
  return name;
}

export function host(value: string, defaultHost: string): string {
  return value === '' ? defaultHost : name('host', value);
}

export function acquireRequest(req: v1.AcquireRequest__Output, defaultHost: string): AcquireInput {
  const latestStart = intIn('latest_start_unix_ms', req.latestStartUnixMs, 0, MAX_UNIX_MS);
  const windowEnd = intIn('window_end_unix_ms', req.windowEndUnixMs, 0, MAX_UNIX_MS);
  if (latestStart > 0 && windowEnd > 0 && latestStart > windowEnd) {
    throw new InvalidArgumentError('latest_start_unix_ms', 'is after window_end_unix_ms');
  }
  if (req.ttlMs !== 0) intIn('ttl_ms', req.ttlMs, LIMITS.minTtlMs, LIMITS.maxTtlMs);
  return {
    requestId: name('request_id', req.requestId),
    kind: enumName('kind', enums.tokenKind, req.kind),
    host: host(req.host, defaultHost),
    vm: name('vm', req.vm),
    job: name('job', req.job, false),
    expectedDurationMs: intIn('expected_duration_ms', req.expectedDurationMs, 0, MAX_DURATION_MS),
    latestStart,
    windowEnd,
    priority: intIn('priority', req.priority, -MAX_PRIORITY, MAX_PRIORITY),
    ttlMs: req.ttlMs,
  };
}

export function tokenRef(req: { tokenId: string; fencing: number }): { tokenId: string; fencing: number } {
  return {
    tokenId: name('token_id', req.tokenId),
    fencing: intIn('fencing', req.fencing, 1, Number.MAX_SAFE_INTEGER),
  };
}

export function outcome(o: v1.Outcome__Output | null): Outcome {
  if (!o) return { success: false, bytes: 0, durationMs: 0, exitCode: 0, message: 'no outcome given' };
  const achieved = consistency('outcome.consistency', o.consistency);
  return {
    success: o.success,
    bytes: intIn('outcome.bytes', o.bytes, 0, Number.MAX_SAFE_INTEGER),
    durationMs: intIn('outcome.duration_ms', o.durationMs, 0, 2 ** 32 - 1),
    exitCode: o.exitCode,
    message: text('outcome.message', o.message),
    ...(achieved ? { consistency: achieved } : {}),
  };
}

/** A Consistency on the wire; undefined for CONSISTENCY_UNSPECIFIED (the holder did not say). */
function consistency(field: string, value: unknown): Consistency | undefined {
  if (value === 'CONSISTENCY_UNSPECIFIED' || value === 0 || value === undefined) return undefined;
  return enumName(field, enums.consistency, value);
}

/** A freeze's bound and the wait for the agent's answer: longer than this is no snapshot's quiesce. */
export const MAX_QUIESCE_MS = 10 * 60_000;

export function quiesceRequest(req: v1.QuiesceRequest__Output): { tokenId: string; fencing: number; holdMs: number; timeoutMs: number } {
  return {
    ...tokenRef(req),
    holdMs: intIn('hold_ms', req.holdMs, 0, MAX_QUIESCE_MS),
    timeoutMs: intIn('timeout_ms', req.timeoutMs, 0, MAX_QUIESCE_MS),
  };
}

/**
 * The change a SetPolicy asks for. With `vm`, it changes only that VM's own start thresholds (`current`'s
 * vmStartBelow, the VM's or else the host's values for the fields not given), and nothing else may be given.
 * @throws InvalidArgumentError naming the field.
 */
export function policyPatch(req: v1.SetPolicyRequest__Output, current: HostPolicy): Partial<HostPolicy> {
  const patch = hostPolicyPatch(req);
  if (req.vm === '') {
    if (req.resetVm) throw new InvalidArgumentError('reset_vm', 'needs vm: the VM whose own thresholds to drop');
    return patch;
  }
  const vm = name('vm', req.vm);
  const { startBelowCpuPercent, startBelowIoBytesPerSec, ...others } = patch;
  const other = Object.entries(others).find(([, v]) => v !== undefined);
  if (other) throw new InvalidArgumentError(policyWireName(other[0] as keyof HostPolicy), 'cannot be set for one VM: only start_below_cpu_percent and start_below_io_bytes_per_sec can');
  const all = { ...completePolicy(current).vmStartBelow };
  if (req.resetVm) {
    if (startBelowCpuPercent !== undefined || startBelowIoBytesPerSec !== undefined) {
      throw new InvalidArgumentError('reset_vm', 'drops the VM\'s thresholds: give no thresholds with it');
    }
    delete all[vm];
  } else {
    if (startBelowCpuPercent === undefined && startBelowIoBytesPerSec === undefined) {
      throw new InvalidArgumentError('vm', 'give start_below_cpu_percent or start_below_io_bytes_per_sec for the VM, or reset_vm');
    }
    const was = all[vm] ?? { cpuPercent: completePolicy(current).startBelowCpuPercent, ioBytesPerSec: completePolicy(current).startBelowIoBytesPerSec };
    all[vm] = { cpuPercent: startBelowCpuPercent ?? was.cpuPercent, ioBytesPerSec: startBelowIoBytesPerSec ?? was.ioBytesPerSec };
  }
  return { vmStartBelow: all };
}

function hostPolicyPatch(req: v1.SetPolicyRequest__Output): Partial<HostPolicy> {
  // proto3 optional fields: a field that was not sent is absent (or undefined) in the decoded object.
  return {
    maxGuestTokens: req.maxGuestTokens ?? undefined,
    maxHypervisorTokens: req.maxHypervisorTokens ?? undefined,
    leaseTtlMs: req.leaseTtlMs ?? undefined,
    allowOverrun: req.allowOverrun ?? undefined,
    reportIntervalMs: req.reportIntervalMs ?? undefined,
    throttleAboveCpuPercent: req.throttleAboveCpuPercent ?? undefined,
    pauseAboveCpuPercent: req.pauseAboveCpuPercent ?? undefined,
    resumeBelowCpuPercent: req.resumeBelowCpuPercent ?? undefined,
    throttleAboveIoBytesPerSec: req.throttleAboveIoBytesPerSec ?? undefined,
    pauseAboveIoBytesPerSec: req.pauseAboveIoBytesPerSec ?? undefined,
    resumeBelowIoBytesPerSec: req.resumeBelowIoBytesPerSec ?? undefined,
    budgetCpuPercent: req.budgetCpuPercent ?? undefined,
    budgetIoBytesPerSec: req.budgetIoBytesPerSec ?? undefined,
    throttledCpuPercent: req.throttledCpuPercent ?? undefined,
    throttledIoBytesPerSec: req.throttledIoBytesPerSec ?? undefined,
    budgetDwellMs: req.budgetDwellMs ?? undefined,
    maxPauseMs: req.maxPauseMs ?? undefined,
    pauseWindowGuardMs: req.pauseWindowGuardMs ?? undefined,
    followPlan: req.followPlan ?? undefined,
    minStartGapMs: req.minStartGapMs ?? undefined,
    hostBudgetCpuPercent: req.hostBudgetCpuPercent ?? undefined,
    hostBudgetIoBytesPerSec: req.hostBudgetIoBytesPerSec ?? undefined,
    startBelowCpuPercent: req.startBelowCpuPercent ?? undefined,
    startBelowIoBytesPerSec: req.startBelowIoBytesPerSec ?? undefined,
    hostStartBelowCpuPercent: req.hostStartBelowCpuPercent ?? undefined,
    hostStartBelowIoBytesPerSec: req.hostStartBelowIoBytesPerSec ?? undefined,
    hypervisorBudgetCpuPercent: req.hypervisorBudgetCpuPercent ?? undefined,
    hypervisorBudgetIoBytesPerSec: req.hypervisorBudgetIoBytesPerSec ?? undefined,
  };
}

export function limit(field: string, value: number, fallback: number, max: number): number {
  return value === 0 ? fallback : intIn(field, value, 1, max);
}

/**
 * Per-host policy: caps, lease TTL, overrun and report interval, with defaults and validation.
 */
import { InvalidArgumentError } from './errors';

export interface HostPolicy {
  /** Concurrent GUEST tokens on the host. Default 4. */
  maxGuestTokens: number;
  /** Concurrent HYPERVISOR tokens on the host. Default 1, like vzdump's node-wide lock. */
  maxHypervisorTokens: number;
  /** Default lease TTL in ms. Default 30 s: a dead holder frees the host within half a minute. */
  leaseTtlMs: number;
  /** Keep a token past its window's end instead of revoking it. Default false. */
  allowOverrun: boolean;
  /** How often agents report load, in ms. Default 10 s. */
  reportIntervalMs: number;
}

export const DEFAULT_POLICY: Readonly<HostPolicy> = Object.freeze({
  maxGuestTokens: 4,
  maxHypervisorTokens: 1,
  leaseTtlMs: 30_000,
  allowOverrun: false,
  reportIntervalMs: 10_000,
});

export const LIMITS = Object.freeze({
  maxTokensPerKind: 1000,
  minTtlMs: 1_000,
  maxTtlMs: 3_600_000,
  minReportIntervalMs: 1_000,
  maxReportIntervalMs: 3_600_000,
});

/**
 * Applies a partial change to a policy and validates the result.
 * @throws InvalidArgumentError naming the first field out of range.
 */
export function applyPolicyPatch(base: HostPolicy, patch: Partial<HostPolicy>): HostPolicy {
  const next: HostPolicy = { ...base };
  for (const [key, value] of Object.entries(patch) as [keyof HostPolicy, unknown][]) {
    if (value !== undefined) (next as unknown as Record<string, unknown>)[key] = value;
  }
  const intIn = (field: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(field, `must be an integer from ${min} to ${max}, got ${v}`);
    }
  };
  intIn('max_guest_tokens', next.maxGuestTokens, 1, LIMITS.maxTokensPerKind);
  intIn('max_hypervisor_tokens', next.maxHypervisorTokens, 1, LIMITS.maxTokensPerKind);
  intIn('lease_ttl_ms', next.leaseTtlMs, LIMITS.minTtlMs, LIMITS.maxTtlMs);
  intIn('report_interval_ms', next.reportIntervalMs, LIMITS.minReportIntervalMs, LIMITS.maxReportIntervalMs);
  return next;
}

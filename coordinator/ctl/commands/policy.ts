/**
 * `headroomctl policy get|set`: a host's rules. `set` sends only the fields given (SetPolicyRequest's
 * proto3 optional fields), so one change never resets another.
 */
import type { Policy__Output, SetPolicyRequest } from '../../../proto/generated/headroom/v1';
import { formatDuration, parseDuration } from '../../../common/duration';
import { parseBool, parseUint32 } from '../args';
import { type Command, hostOption } from '../command';
import { print, printJson } from '../context';
import { UsageError } from '../errors';
import { formatFields } from '../table';

const HOST_HELP = "the host (default: the coordinator's own)";

/** A duration option's value in milliseconds, which must fit the uint32 `*_ms` field. */
function parseDurationMs(raw: string): number {
  const ms = parseDuration(raw);
  if (ms > 0xffff_ffff) throw new Error(`${raw} is too long (at most ${formatDuration(0xffff_ffff)})`);
  return ms;
}

export const policyGetCommand: Command = {
  name: 'policy get',
  summary: "show a host's policy",
  synopsis: '[--host H]',
  options: [hostOption(HOST_HELP)],
  async run(ctx, args) {
    const host = args.get<string>('host') ?? '';
    const policy = await ctx.admin('GetPolicy', { host });
    if (ctx.json) printJson(ctx, policy);
    else print(ctx, renderPolicy(policy, host));
    return 0;
  },
};

/** Option name → SetPolicyRequest field. */
const SETTABLE = [
  ['max-guest', 'maxGuestTokens'],
  ['max-hypervisor', 'maxHypervisorTokens'],
  ['lease-ttl', 'leaseTtlMs'],
  ['allow-overrun', 'allowOverrun'],
  ['report-interval', 'reportIntervalMs'],
] as const;

export const policySetCommand: Command = {
  name: 'policy set',
  summary: "change a host's policy (only the fields given)",
  synopsis:
    '[--host H] [--max-guest N] [--max-hypervisor N] [--lease-ttl DURATION] [--allow-overrun true|false] [--report-interval DURATION]',
  description: 'Fields not given keep their value. DURATION is like 30s, 5m, 1h30m (a bare number is milliseconds).',
  options: [
    hostOption(HOST_HELP),
    { name: 'max-guest', value: 'N', help: 'concurrent GUEST tokens on the host', parse: parseUint32 },
    { name: 'max-hypervisor', value: 'N', help: 'concurrent HYPERVISOR tokens on the host', parse: parseUint32 },
    { name: 'lease-ttl', value: 'DURATION', help: 'default TTL of a token', parse: parseDurationMs },
    { name: 'allow-overrun', value: 'true|false', help: "keep a token past its window's end", parse: parseBool },
    { name: 'report-interval', value: 'DURATION', help: 'how often agents report load', parse: parseDurationMs },
  ],
  async run(ctx, args) {
    const host = args.get<string>('host') ?? '';
    const request = buildSetPolicyRequest(host, args);
    const policy = await ctx.admin('SetPolicy', request);
    if (ctx.json) printJson(ctx, policy);
    else print(ctx, `policy updated\n${renderPolicy(policy, host)}`);
    return 0;
  },
};

/** The request with only the given fields set. @throws UsageError when no field is given. */
export function buildSetPolicyRequest(host: string, args: { has(n: string): boolean; get<T>(n: string): T | undefined }): SetPolicyRequest {
  const request: Record<string, unknown> = { host };
  for (const [option, field] of SETTABLE) {
    if (args.has(option)) request[field] = args.get(option);
  }
  if (Object.keys(request).length === 1) {
    throw new UsageError(`nothing to set: give at least one of ${SETTABLE.map(([o]) => `--${o}`).join(', ')}`);
  }
  return request as SetPolicyRequest;
}

export function renderPolicy(p: Policy__Output, host: string): string {
  return formatFields([
    ['host', host || "(the coordinator's own)"],
    ['max guest tokens', String(p.maxGuestTokens)],
    ['max hypervisor tokens', String(p.maxHypervisorTokens)],
    ['lease ttl', formatDuration(p.leaseTtlMs)],
    ['allow overrun', String(p.allowOverrun)],
    ['report interval', formatDuration(p.reportIntervalMs)],
  ]);
}

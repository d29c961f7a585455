/**
 * `headroomctl policy get|set`: a host's rules, the budget controller's among them. `set` sends only the
 * fields given (SetPolicyRequest's proto3 optional fields), so one change never resets another.
 */
import type { Policy__Output, SetPolicyRequest } from '../../../proto/generated/headroom/v1';
import { formatDuration, parseDuration } from '../../../common/duration';
import { type OptionSpec, parseBool, parseByteRate, parsePercent, parseUint32 } from '../args';
import { type Command, hostOption } from '../command';
import { print, printJson } from '../context';
import { UsageError } from '../errors';
import { formatCpuShare, formatIoBudget, formatRate } from '../human';
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
  ['throttle-above-cpu', 'throttleAboveCpuPercent'],
  ['pause-above-cpu', 'pauseAboveCpuPercent'],
  ['resume-below-cpu', 'resumeBelowCpuPercent'],
  ['throttle-above-io', 'throttleAboveIoBytesPerSec'],
  ['pause-above-io', 'pauseAboveIoBytesPerSec'],
  ['resume-below-io', 'resumeBelowIoBytesPerSec'],
  ['budget-cpu', 'budgetCpuPercent'],
  ['budget-io', 'budgetIoBytesPerSec'],
  ['throttled-cpu', 'throttledCpuPercent'],
  ['throttled-io', 'throttledIoBytesPerSec'],
  ['budget-dwell', 'budgetDwellMs'],
  ['max-pause', 'maxPauseMs'],
  ['pause-window-guard', 'pauseWindowGuardMs'],
] as const;

const BUDGET_OPTIONS: OptionSpec[] = [
  { name: 'throttle-above-cpu', value: 'PERCENT', help: "throttle a backup from this foreground CPU of its VM (0-100; 0: off)", parse: parsePercent },
  { name: 'pause-above-cpu', value: 'PERCENT', help: 'pause it from this foreground CPU, above the throttle threshold (0: off)', parse: parsePercent },
  { name: 'resume-below-cpu', value: 'PERCENT', help: 'full budget again below this foreground CPU, under both thresholds', parse: parsePercent },
  { name: 'throttle-above-io', value: 'RATE', help: 'throttle from this foreground disk I/O, reads plus writes (0: off)', parse: parseByteRate },
  { name: 'pause-above-io', value: 'RATE', help: 'pause from this foreground disk I/O (0: off)', parse: parseByteRate },
  { name: 'resume-below-io', value: 'RATE', help: 'full budget again below this foreground disk I/O', parse: parseByteRate },
  { name: 'budget-cpu', value: 'PERCENT', help: "CPU budget of a backup whose token sets none, in % of one core (150: 1.5 cores; 0: no limit)", parse: parseUint32 },
  { name: 'budget-io', value: 'RATE', help: 'I/O budget of a backup whose token sets none (0: no limit)', parse: parseByteRate },
  { name: 'throttled-cpu', value: 'PERCENT', help: 'CPU budget of a throttled or paused backup, in % of one core (0: its full budget)', parse: parseUint32 },
  { name: 'throttled-io', value: 'RATE', help: 'I/O budget of a throttled or paused backup (0: its full budget)', parse: parseByteRate },
  { name: 'budget-dwell', value: 'DURATION', help: 'loosen a budget only once the load has asked for it this long', parse: parseDurationMs },
  { name: 'max-pause', value: 'DURATION', help: 'pause a backup at most this long in all, then throttle it (0: never pause)', parse: parseDurationMs },
  {
    name: 'pause-window-guard',
    value: 'DURATION',
    help: "no pause once the backup's expected remaining work plus this would pass its window's end",
    parse: parseDurationMs,
  },
];

export const policySetCommand: Command = {
  name: 'policy set',
  summary: "change a host's policy (only the fields given)",
  synopsis:
    '[--host H] [--max-guest N] [--max-hypervisor N] [--lease-ttl DURATION] [--allow-overrun true|false] [--report-interval DURATION] [budget options]',
  description: [
    'Fields not given keep their value. DURATION is like 30s, 5m, 1h30m (a bare number is milliseconds);',
    'RATE is bytes per second, like 500K, 10MiB, 1G (binary units).',
    '',
    "Budgets: a running guest backup is throttled when its VM's foreground load (the VM's own work, without",
    "Headroom's backups) reaches a throttle threshold, and paused at a pause threshold; it gets its full budget",
    'back once the load has stayed under the resume thresholds for the dwell time. A pause is bounded by',
    "--max-pause and by the backup's window; where it could not last, the backup is throttled instead.",
  ].join('\n'),
  options: [
    hostOption(HOST_HELP),
    { name: 'max-guest', value: 'N', help: 'concurrent GUEST tokens on the host', parse: parseUint32 },
    { name: 'max-hypervisor', value: 'N', help: 'concurrent HYPERVISOR tokens on the host', parse: parseUint32 },
    { name: 'lease-ttl', value: 'DURATION', help: 'default TTL of a token', parse: parseDurationMs },
    { name: 'allow-overrun', value: 'true|false', help: "keep a token past its window's end", parse: parseBool },
    { name: 'report-interval', value: 'DURATION', help: 'how often agents report load', parse: parseDurationMs },
    ...BUDGET_OPTIONS,
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
    ['throttle from', signals(p.throttleAboveCpuPercent, p.throttleAboveIoBytesPerSec)],
    ['pause from', signals(p.pauseAboveCpuPercent, p.pauseAboveIoBytesPerSec)],
    ['resume below', signals(p.resumeBelowCpuPercent, p.resumeBelowIoBytesPerSec)],
    ['backup budget', `cpu ${formatCpuShare(p.budgetCpuPercent)}, io ${formatIoBudget(p.budgetIoBytesPerSec)}`],
    ['throttled budget', `cpu ${reduced(formatCpuShare, p.throttledCpuPercent)}, io ${reduced(formatIoBudget, p.throttledIoBytesPerSec)}`],
    ['budget dwell', formatDuration(p.budgetDwellMs)],
    ['max pause', p.maxPauseMs === 0 ? 'never pause' : formatDuration(p.maxPauseMs)],
    ['pause window guard', formatDuration(p.pauseWindowGuardMs)],
  ]);
}

/** "foreground cpu 60%, io 100 MiB/s", a threshold of 0 being off. */
function signals(cpuPercent: number, ioBytesPerSec: number): string {
  return `foreground cpu ${cpuPercent ? `${cpuPercent}%` : 'off'}, io ${ioBytesPerSec ? formatRate(ioBytesPerSec) : 'off'}`;
}

/** A throttled budget's field: 0 keeps the full budget's. */
function reduced(format: (v: number) => string, value: number): string {
  return value === 0 ? 'full' : format(value);
}

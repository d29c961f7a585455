/**
 * `headroomctl policy get|set`: a host's rules, the budget controller's among them. `set` sends only the
 * fields given (SetPolicyRequest's proto3 optional fields), so one change never resets another.
 */
import type { Policy__Output, SetPolicyRequest, VmPressure__Output } from '../../proto/generated/headroom/v1';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { type OptionSpec, parseBool, parsePercent, parseString, parseUint32 } from '../../common/util/cli-args';
import { parseByteRate } from '../../common/util/byte-rate';
import { type Command, targetHostOption } from '../command';
import { print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { formatCpuShare, formatIoBudget, formatRate } from '../../common/util/human';
import { formatFields } from '../table';
import { BUDGET_MODES, PRESSURE_THRESHOLDS } from '../../coordinator/domain/policy';

/** A duration option's value in milliseconds, which must fit the uint32 `*_ms` field. */
function parseDurationMs(raw: string): number {
  const ms = parseFlagDuration(raw);
  if (ms > 0xffff_ffff) throw new Error(`${raw} is too long (at most ${formatDuration(0xffff_ffff)})`);
  return ms;
}

export const policyGetCommand: Command = {
  name: 'policy get',
  examples: ['policy get', 'policy get --host pve1 --json'],
  summary: "show a host's policy, with each VM's own start and pressure thresholds",
  synopsis: '[--host H]',
  options: [targetHostOption()],
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
  ['budget-mode', 'budgetMode'],
  ['follow-plan', 'followPlan'],
  ['min-start-gap', 'minStartGapMs'],
  ['host-budget-cpu', 'hostBudgetCpuPercent'],
  ['host-budget-io', 'hostBudgetIoBytesPerSec'],
  ['start-below-cpu', 'startBelowCpuPercent'],
  ['start-below-io', 'startBelowIoBytesPerSec'],
  ['host-start-below-cpu', 'hostStartBelowCpuPercent'],
  ['host-start-below-io', 'hostStartBelowIoBytesPerSec'],
  ['hypervisor-budget-cpu', 'hypervisorBudgetCpuPercent'],
  ['hypervisor-budget-io', 'hypervisorBudgetIoBytesPerSec'],
  ['throttle-above-io-pressure', 'throttleAboveIoPressurePercent'],
  ['pause-above-io-pressure', 'pauseAboveIoPressurePercent'],
  ['resume-below-io-pressure', 'resumeBelowIoPressurePercent'],
  ['throttle-above-cpu-pressure', 'throttleAboveCpuPressurePercent'],
  ['pause-above-cpu-pressure', 'pauseAboveCpuPressurePercent'],
  ['resume-below-cpu-pressure', 'resumeBelowCpuPressurePercent'],
  ['throttle-above-memory-pressure', 'throttleAboveMemoryPressurePercent'],
  ['pause-above-memory-pressure', 'pauseAboveMemoryPressurePercent'],
  ['resume-below-memory-pressure', 'resumeBelowMemoryPressurePercent'],
  ['throttle-above-disk-await', 'throttleAboveDiskAwaitMs'],
  ['pause-above-disk-await', 'pauseAboveDiskAwaitMs'],
  ['resume-below-disk-await', 'resumeBelowDiskAwaitMs'],
  ['vm', 'vm'],
  ['reset-vm', 'resetVm'],
] as const;

/** PSI: which line of which file each resource's thresholds read. */
const PRESSURE_OF = { io: 'io some', cpu: 'cpu some', memory: 'memory full' } as const;

const PRESSURE_OPTIONS: OptionSpec[] = [
  ...(['io', 'cpu', 'memory'] as const).flatMap((r): OptionSpec[] => [
    {
      name: `throttle-above-${r}-pressure`,
      value: 'PERCENT',
      help: `throttle from this PSI ${PRESSURE_OF[r]} avg10 (0-100; 0: off)`,
      parse: parsePercent,
    },
    {
      name: `pause-above-${r}-pressure`,
      value: 'PERCENT',
      help: `pause from this ${r} pressure (0: off)`,
      parse: parsePercent,
    },
    {
      name: `resume-below-${r}-pressure`,
      value: 'PERCENT',
      help: `full budget again below this ${r} pressure`,
      parse: parsePercent,
    },
  ]),
  {
    name: 'throttle-above-disk-await',
    value: 'DURATION',
    help: 'where PSI is missing: throttle from this await of the slowest disk, per I/O (0: off)',
    parse: parseDurationMs,
  },
  {
    name: 'pause-above-disk-await',
    value: 'DURATION',
    help: 'pause from this disk await (0: off)',
    parse: parseDurationMs,
  },
  {
    name: 'resume-below-disk-await',
    value: 'DURATION',
    help: 'full budget again below this disk await',
    parse: parseDurationMs,
  },
];

const BUDGET_OPTIONS: OptionSpec[] = [
  {
    name: 'throttle-above-cpu',
    value: 'PERCENT',
    help: 'throttle a backup from this foreground CPU of its VM (0-100; 0: off)',
    parse: parsePercent,
  },
  {
    name: 'pause-above-cpu',
    value: 'PERCENT',
    help: 'pause it from this foreground CPU, above the throttle threshold (0: off)',
    parse: parsePercent,
  },
  {
    name: 'resume-below-cpu',
    value: 'PERCENT',
    help: 'full budget again below this foreground CPU, under both thresholds',
    parse: parsePercent,
  },
  {
    name: 'throttle-above-io',
    value: 'RATE',
    help: 'throttle from this foreground disk I/O, reads plus writes (0: off)',
    parse: parseByteRate,
  },
  { name: 'pause-above-io', value: 'RATE', help: 'pause from this foreground disk I/O (0: off)', parse: parseByteRate },
  {
    name: 'resume-below-io',
    value: 'RATE',
    help: 'full budget again below this foreground disk I/O',
    parse: parseByteRate,
  },
  {
    name: 'budget-cpu',
    value: 'PERCENT',
    help: 'CPU budget of a backup whose token sets none, in % of one core (150: 1.5 cores; 0: no limit)',
    parse: parseUint32,
  },
  {
    name: 'budget-io',
    value: 'RATE',
    help: 'I/O budget of a backup whose token sets none (0: no limit)',
    parse: parseByteRate,
  },
  {
    name: 'throttled-cpu',
    value: 'PERCENT',
    help: 'CPU budget of a throttled or paused backup, in % of one core (0: its full budget)',
    parse: parseUint32,
  },
  {
    name: 'throttled-io',
    value: 'RATE',
    help: 'I/O budget of a throttled or paused backup (0: its full budget)',
    parse: parseByteRate,
  },
  {
    name: 'budget-mode',
    value: 'fixed|adaptive',
    help: 'under the pause thresholds: the base or throttled budget (fixed), or AIMD between them (adaptive)',
    parse: (raw: string) => {
      if (!(BUDGET_MODES as readonly string[]).includes(raw))
        throw new Error(`expected fixed or adaptive, got "${raw}"`);
      return raw;
    },
  },
  {
    name: 'budget-dwell',
    value: 'DURATION',
    help: 'loosen a budget only once the load has asked for it this long',
    parse: parseDurationMs,
  },
  {
    name: 'max-pause',
    value: 'DURATION',
    help: 'pause a backup at most this long in all, then throttle it (0: never pause)',
    parse: parseDurationMs,
  },
  {
    name: 'pause-window-guard',
    value: 'DURATION',
    help: "no pause once the backup's expected remaining work plus this would pass its window's end",
    parse: parseDurationMs,
  },
];

const START_OPTIONS: OptionSpec[] = [
  {
    name: 'follow-plan',
    value: 'true|false',
    help: "a request for a planned run waits for its slot in the host's plan",
    parse: parseBool,
  },
  {
    name: 'min-start-gap',
    value: 'DURATION',
    help: 'two planned starts are at least this far apart (0: none)',
    parse: parseDurationMs,
  },
  {
    name: 'host-budget-cpu',
    value: 'PERCENT',
    help: 'what all backups together may spend, in % of one core (0: no limit)',
    parse: parseUint32,
  },
  {
    name: 'host-budget-io',
    value: 'RATE',
    help: 'what all backups together may spend in disk I/O (0: no limit)',
    parse: parseByteRate,
  },
  {
    name: 'start-below-cpu',
    value: 'PERCENT',
    help: 'start no backup on a VM whose foreground CPU is at or above this (0: off)',
    parse: parsePercent,
  },
  {
    name: 'start-below-io',
    value: 'RATE',
    help: 'start no backup on a VM whose foreground disk I/O is at or above this (0: off)',
    parse: parseByteRate,
  },
  {
    name: 'host-start-below-cpu',
    value: 'PERCENT',
    help: "start no backup while the host's CPU is at or above this (0: off)",
    parse: parsePercent,
  },
  {
    name: 'host-start-below-io',
    value: 'RATE',
    help: "start no backup while the host's disk I/O is at or above this (0: off)",
    parse: parseByteRate,
  },
  {
    name: 'hypervisor-budget-cpu',
    value: 'PERCENT',
    help: 'CPU budget of a HYPERVISOR token, in % of one core (0: no limit)',
    parse: parseUint32,
  },
  {
    name: 'hypervisor-budget-io',
    value: 'RATE',
    help: 'I/O budget of a HYPERVISOR token (0: no limit)',
    parse: parseByteRate,
  },
  {
    name: 'vm',
    value: 'VM',
    help: "with --start-below-cpu/--start-below-io and pressure options: set that VM's own thresholds",
    parse: parseString,
  },
  {
    name: 'reset-vm',
    help: "with --vm: drop the VM's own start and pressure thresholds (it follows the host's again)",
  },
];

export const policySetCommand: Command = {
  name: 'policy set',
  examples: [
    'policy set --max-guest 2 --lease-ttl 1m',
    'policy set --host pve1 --throttle-above-cpu 70 --pause-above-cpu 90 --max-pause 10m',
    'policy set --vm web1 --throttle-above-cpu-pressure 60 --pause-above-cpu-pressure 80 --resume-below-cpu-pressure 50',
  ],
  summary: "change a host's policy (only the fields given)",
  synopsis:
    '[--host H] [--max-guest N] [--max-hypervisor N] [--lease-ttl DURATION] [--allow-overrun true|false] [--report-interval DURATION] [budget options] [pressure options] [start options]',
  description: [
    'Fields not given keep their value. DURATION is like 30s, 5m, 1h30m (a bare number is milliseconds);',
    'RATE is bytes per second, like 500K, 10MiB, 1G (binary units).',
    '',
    "Budgets: a running guest backup is throttled when its VM's foreground load (the VM's own work, without",
    "Headroom's backups) reaches a throttle threshold, and paused at a pause threshold; it gets its full budget",
    'back once the load has stayed under the resume thresholds for the dwell time. A pause is bounded by',
    "--max-pause and by the backup's window; where it could not last, the backup is throttled instead.",
    '',
    'Pressure: where the load report carries PSI (/proc/pressure) and a pressure threshold is on, the',
    'pressure thresholds decide instead of the CPU and I/O ones; where PSI is missing, the disk await',
    'thresholds do with the CPU and I/O ones. `headroomctl agents` shows which signal is in force per VM.',
    "With --vm, the pressure and disk await options set that VM's own thresholds instead of the host's: those",
    "given replace the host's for that VM's load (its backups' budget and start), the others follow the host's.",
    "Give them to a VM that runs near capacity, whose own work stalls at rest past the host's thresholds, so",
    'that its backups are not held or paused for good. --vm --reset-vm drops them with its start thresholds.',
    '',
    "Starts: a request for a run in the host's plan (`headroomctl plan`) waits for its slot. No backup starts",
    'on a VM whose foreground load, or on a host whose own load, is at or above a start threshold, unless',
    'waiting longer would miss its window: it then starts on the throttled budget.',
  ].join('\n'),
  options: [
    targetHostOption(),
    { name: 'max-guest', value: 'N', help: 'concurrent GUEST tokens on the host', parse: parseUint32 },
    { name: 'max-hypervisor', value: 'N', help: 'concurrent HYPERVISOR tokens on the host', parse: parseUint32 },
    { name: 'lease-ttl', value: 'DURATION', help: 'default TTL of a token', parse: parseDurationMs },
    { name: 'allow-overrun', value: 'true|false', help: "keep a token past its window's end", parse: parseBool },
    { name: 'report-interval', value: 'DURATION', help: 'how often agents report load', parse: parseDurationMs },
    ...BUDGET_OPTIONS,
    ...PRESSURE_OPTIONS,
    ...START_OPTIONS,
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
export function buildSetPolicyRequest(
  host: string,
  args: { has(n: string): boolean; get<T>(n: string): T | undefined },
): SetPolicyRequest {
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
    [
      'throttled budget',
      `cpu ${reduced(formatCpuShare, p.throttledCpuPercent)}, io ${reduced(formatIoBudget, p.throttledIoBytesPerSec)}`,
    ],
    ['pressure throttle/pause/resume', pressures(p)],
    [
      'disk await throttle/pause/resume',
      [p.throttleAboveDiskAwaitMs, p.pauseAboveDiskAwaitMs, p.resumeBelowDiskAwaitMs].map(awaitMs).join(' / '),
    ],
    ['budget mode', p.budgetMode],
    ['budget dwell', formatDuration(p.budgetDwellMs)],
    ['max pause', p.maxPauseMs === 0 ? 'never pause' : formatDuration(p.maxPauseMs)],
    ['pause window guard', formatDuration(p.pauseWindowGuardMs)],
    ['follow plan', String(p.followPlan)],
    ['min start gap', formatDuration(p.minStartGapMs)],
    [
      'host backup budget',
      `cpu ${formatCpuShare(p.hostBudgetCpuPercent)}, io ${formatIoBudget(p.hostBudgetIoBytesPerSec)}`,
    ],
    [
      'start below',
      `${signals(p.startBelowCpuPercent, p.startBelowIoBytesPerSec, 'vm foreground')}; ${signals(p.hostStartBelowCpuPercent, p.hostStartBelowIoBytesPerSec, 'host')}`,
    ],
    [
      'hypervisor budget',
      `cpu ${formatCpuShare(p.hypervisorBudgetCpuPercent)}, io ${formatIoBudget(p.hypervisorBudgetIoBytesPerSec)}`,
    ],
    ...Object.entries(p.vmStartBelow ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([vm, t]): [string, string] => [
        `start below (${vm})`,
        signals(t.cpuPercent, Number(t.ioBytesPerSec), 'vm foreground'),
      ]),
    ...Object.entries(p.vmPressure ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([vm, own]): [string, string] => [`pressure (${vm})`, vmPressure(own)]),
  ]);
}

/** "cpu some 60% / 80% / host; the host's for the rest": the thresholds a VM gives for itself, by signal. */
function vmPressure(own: VmPressure__Output): string {
  // PRESSURE_THRESHOLDS' order: io, cpu and memory pressure, then the disk await.
  const labels = [PRESSURE_OF.io, PRESSURE_OF.cpu, PRESSURE_OF.memory, 'disk await'];
  const given = PRESSURE_THRESHOLDS.flatMap(([t, pa, r], i) => {
    const values = [t, pa, r].map((f) => own[f] ?? undefined);
    if (values.every((v) => v === undefined)) return [];
    const show = (v: number | undefined) => (v === undefined ? 'host' : i === 3 ? awaitMs(v) : v ? `${v}%` : 'off');
    return [`${labels[i]} ${values.map(show).join(' / ')}`];
  });
  return [...given, "the host's for the rest"].join('; ');
}

/** "foreground cpu 60%, io 100 MiB/s", a threshold of 0 being off. */
function signals(cpuPercent: number, ioBytesPerSec: number, of = 'foreground'): string {
  return `${of} cpu ${cpuPercent ? `${cpuPercent}%` : 'off'}, io ${ioBytesPerSec ? formatRate(ioBytesPerSec) : 'off'}`;
}

/** "io some 10% / 25% / 5%; cpu some …": each resource's PSI thresholds, 0 being off. */
function pressures(p: Policy__Output): string {
  const pct = (v: number) => (v ? `${v}%` : 'off');
  const of = (r: keyof typeof PRESSURE_OF, t: number, pa: number, re: number) =>
    `${PRESSURE_OF[r]} ${pct(t)} / ${pct(pa)} / ${pct(re)}`;
  return [
    of('io', p.throttleAboveIoPressurePercent, p.pauseAboveIoPressurePercent, p.resumeBelowIoPressurePercent),
    of('cpu', p.throttleAboveCpuPressurePercent, p.pauseAboveCpuPressurePercent, p.resumeBelowCpuPressurePercent),
    of(
      'memory',
      p.throttleAboveMemoryPressurePercent,
      p.pauseAboveMemoryPressurePercent,
      p.resumeBelowMemoryPressurePercent,
    ),
  ].join('; ');
}

const awaitMs = (v: number) => (v ? `${v} ms` : 'off');

/** A throttled budget's field: 0 keeps the full budget's. */
function reduced(format: (v: number) => string, value: number): string {
  return value === 0 ? 'full' : format(value);
}

/**
 * `headroomctl plan`: what the coordinator's planner would do with a host's declared backups over the
 * coming hours, as a text Gantt chart (gantt.ts) followed by the runs it could not place and why; with
 * --target, a shared target's runs in every host's plan and the most they hold of it at once.
 */
import type { PlannedSlot__Output, Plan__Output, TargetInfo__Output } from '../../proto/generated/headroom/v1';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { type Command, targetHostOption } from '../command';
import { print, printJson } from '../context';
import { DEFAULT_WIDTH, LEGEND, renderGantt } from '../gantt';
import { formatClock, formatIoBudget, formatRate, formatSpan } from '../../common/util/human';
import { parseString } from '../../common/util/cli-args';
import { UsageError } from '../../common/util/usage-error';
import { formatTable } from '../table';

/** Said whenever the plan holds no hypervisor run, so nobody reads their absence as "none are due". */

export const planCommand: Command = {
  name: 'plan',
  examples: ['plan', 'plan --host pve1 --horizon 6h', 'plan --target pbs1'],
  summary: "a host's backup plan for the coming hours, as a timeline; or a shared target's, across hosts",
  synopsis: '[--host H | --target NAME] [--horizon DURATION]',
  description: [
    'The coordinator plans the guest jobs its agents declared (each occurrence of their cron schedules, with',
    'durations learnt from past runs) around the backups running now, and shows it: one row per VM and job,',
    "'=' where a guest backup is planned, '#' for a hypervisor one, '.' over its window. Runs it could not",
    'place are listed with the reason. The plan is a forecast: tokens are still granted as agents ask.',
    '',
    "--target NAME shows a shared target's timeline instead (coordinator.yaml's targets): the runs that",
    'write to it in the plans every host follows, one row per host:VM/job, and the most they hold of it at',
    'once against its maxConcurrent and ioBudget.',
  ].join('\n'),
  options: [
    targetHostOption(),
    {
      name: 'target',
      value: 'NAME',
      help: "a shared target's timeline across hosts instead of a host's plan",
      parse: parseString,
    },
    {
      name: 'horizon',
      value: 'DURATION',
      help: 'how far ahead to plan (default 24h, at most 7 days)',
      parse: parseFlagDuration,
    },
  ],
  async run(ctx, args) {
    const target = args.get<string>('target') ?? '';
    if (target && args.has('host')) throw new UsageError('give --host or --target, not both');
    const plan = await ctx.admin('GetPlan', {
      host: args.get<string>('host') ?? '',
      horizonMs: args.get<number>('horizon') ?? 0,
      target,
    });
    const width = process.stdout.columns || DEFAULT_WIDTH;
    if (ctx.json) printJson(ctx, plan);
    else
      print(
        ctx,
        plan.target ? renderTargetPlan(plan, plan.target, ctx.now(), width) : renderPlan(plan, ctx.now(), width),
      );
    return 0;
  },
};

/** The heading, the chart with its legend, and the runs not placed. */
export function renderPlan(plan: Plan__Output, now: number, width: number): string {
  const from = plan.generatedUnixMs;
  const heading = [
    `plan of ${plan.host} from ${formatClock(from, now)} to ${formatClock(plan.horizonEndUnixMs, now)} ` +
      `(${formatSpan(plan.horizonEndUnixMs - from)}): ${count(plan.slots.length, 'run')} planned, ${plan.unplaced.length} not placed`,
  ];
  if (plan.slots.length + plan.unplaced.length === 0) {
    return [
      ...heading,
      `no jobs are declared for ${plan.host}: by its agents, or in its coordinator's hypervisorJobs`,
    ].join('\n');
  }

  const parts = [heading.join('\n'), `${renderGantt(plan, from, width)}\n${LEGEND}`];
  if (plan.unplaced.length > 0) {
    parts.push(
      formatTable(
        [
          { header: 'NOT PLACED', maxWidth: 40 },
          { header: 'DUE' },
          { header: 'WINDOW' },
          { header: 'REASON', maxWidth: 80 },
        ],
        plan.unplaced.map((u) => [
          `${u.vm}/${u.job}`,
          formatClock(u.earliestStartUnixMs, now),
          u.windowEndUnixMs ? formatDuration(u.windowEndUnixMs - u.earliestStartUnixMs) : '-',
          u.reason,
        ]),
      ),
    );
  }
  return parts.join('\n\n');
}

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** A shared target's timeline: its limits and use now, the most the plans hold of it at once, the chart. */
export function renderTargetPlan(plan: Plan__Output, target: TargetInfo__Output, now: number, width: number): string {
  const from = plan.generatedUnixMs;
  const limits = `at most ${target.maxConcurrent} backups, I/O ${formatIoBudget(target.ioBudgetBytesPerSec)}`;
  const use = `now ${target.active} backups, I/O ${formatRate(target.ioBytesPerSec)}, ${target.queued} waiting`;
  const heading = `target ${target.name} (${limits}; ${use}) from ${formatClock(from, now)} to ${formatClock(plan.horizonEndUnixMs, now)}`;
  if (plan.slots.length === 0) return `${heading}\nno planned run writes to it`;
  const peak = peakUse(plan.slots);
  const hosts = new Set(plan.slots.map((s) => s.host)).size;
  const summary =
    `${count(plan.slots.length, 'run')} planned on ${count(hosts, 'host')}; at most ${peak.backups} at once ` +
    `(from ${formatClock(peak.backupsAt, now)}), I/O at most ${formatRate(peak.io)} (from ${formatClock(peak.ioAt, now)})`;
  return [`${heading}\n${summary}`, `${renderGantt(plan, from, width)}\n${LEGEND}`].join('\n\n');
}

/** The most planned runs at once, and the most of their I/O at once, with when each is first reached. */
export function peakUse(slots: readonly PlannedSlot__Output[]): {
  backups: number;
  backupsAt: number;
  io: number;
  ioAt: number;
} {
  // An end sorts before a start at the same instant: a slot ending as another starts do not overlap.
  const edges = slots
    .flatMap((s) => [
      { at: s.startUnixMs, n: 1, io: s.targetIoBytesPerSec },
      { at: s.endUnixMs, n: -1, io: -s.targetIoBytesPerSec },
    ])
    .sort((a, b) => a.at - b.at || a.n - b.n);
  const peak = { backups: 0, backupsAt: 0, io: 0, ioAt: 0 };
  let backups = 0;
  let io = 0;
  for (const e of edges) {
    backups += e.n;
    io += e.io;
    if (backups > peak.backups) Object.assign(peak, { backups, backupsAt: e.at });
    if (io > peak.io) Object.assign(peak, { io, ioAt: e.at });
  }
  return peak;
}

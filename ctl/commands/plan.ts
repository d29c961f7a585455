/**
 * `headroomctl plan`: what the coordinator's planner would do with a host's declared backups over the
 * coming hours, as a text Gantt chart (gantt.ts) followed by the runs it could not place and why.
 */
import type { Plan__Output } from '../../proto/generated/headroom/v1';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { type Command, targetHostOption } from '../command';
import { print, printJson } from '../context';
import { DEFAULT_WIDTH, LEGEND, renderGantt } from '../gantt';
import { formatClock, formatSpan } from '../../common/util/human';
import { formatTable } from '../table';

/** Said whenever the plan holds no hypervisor run, so nobody reads their absence as "none are due". */

export const planCommand: Command = {
  name: 'plan',
  examples: ['plan', 'plan --host pve1 --horizon 6h'],
  summary: "a host's backup plan for the coming hours, as a timeline",
  synopsis: '[--host H] [--horizon DURATION]',
  description: [
    'The coordinator plans the guest jobs its agents declared (each occurrence of their cron schedules, with',
    'durations learnt from past runs) around the backups running now, and shows it: one row per VM and job,',
    "'=' where a guest backup is planned, '#' for a hypervisor one, '.' over its window. Runs it could not",
    'place are listed with the reason. The plan is a forecast: tokens are still granted as agents ask.',
  ].join('\n'),
  options: [
    targetHostOption(),
    {
      name: 'horizon',
      value: 'DURATION',
      help: 'how far ahead to plan (default 24h, at most 7 days)',
      parse: parseFlagDuration,
    },
  ],
  async run(ctx, args) {
    const plan = await ctx.admin('GetPlan', {
      host: args.get<string>('host') ?? '',
      horizonMs: args.get<number>('horizon') ?? 0,
    });
    if (ctx.json) printJson(ctx, plan);
    else print(ctx, renderPlan(plan, ctx.now(), process.stdout.columns || DEFAULT_WIDTH));
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

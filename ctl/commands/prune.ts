/**
 * `headroomctl prune`: removes the backups a retention policy does not keep (catalog/retention.ts), disk by
 * disk, never one that a kept backup reads through; `--dry-run` only says what it would do. On a directory
 * on this machine (--dir) or on the coordinator's.
 */
import { parseUint32 } from '../../common/util/cli-args';
import { CATALOG_OPTIONS, WHERE_HELP, catalogSource } from '../catalog-source';
import type { Command } from '../command';
import { note, print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { formatBytes } from '../../common/util/human';

export const pruneCommand: Command = {
  name: 'prune',
  examples: ['prune --dir /var/backups/headroom --keep-daily 7 --keep-weekly 4 --dry-run'],
  summary:
    "remove the backups a retention policy does not keep (--dry-run to see; --dir DIR: local; else the coordinator's)",
  synopsis: '[--dir DIR] [--vm V] [--disk D] [--keep-last N] [--keep-daily N] [--keep-weekly N] [--dry-run]',
  description: [
    'For each disk: keeps the N latest backups, the latest of each of the N latest days and of the N latest',
    'weeks that have backups (UTC; weeks start on Monday), the latest backup in any case, and every backup a',
    'kept one reads through (an incremental needs its whole chain). Removes the rest, newest first. A disk',
    'with a manifest that cannot be read is left alone (its chains cannot be known), and the exit status is 1.',
    '',
    WHERE_HELP,
  ].join('\n'),
  options: [
    ...CATALOG_OPTIONS,
    { name: 'keep-last', value: 'N', help: 'keep the N latest backups', parse: parseUint32 },
    {
      name: 'keep-daily',
      value: 'N',
      help: 'keep the latest backup of each of the N latest days with backups',
      parse: parseUint32,
    },
    {
      name: 'keep-weekly',
      value: 'N',
      help: 'keep the latest backup of each of the N latest weeks with backups',
      parse: parseUint32,
    },
    { name: 'dry-run', help: 'say what would be removed, remove nothing' },
  ],
  async run(ctx, args) {
    const policy = {
      keepLast: args.get<number>('keep-last'),
      keepDaily: args.get<number>('keep-daily'),
      keepWeekly: args.get<number>('keep-weekly'),
    };
    if (policy.keepLast === undefined && policy.keepDaily === undefined && policy.keepWeekly === undefined) {
      throw new UsageError('give at least one of --keep-last, --keep-daily, --keep-weekly');
    }
    const filter = { vm: args.get<string>('vm') ?? '', disk: args.get<string>('disk') ?? '' };
    if (filter.disk && !filter.vm) throw new UsageError('--disk needs --vm');
    const dryRun = args.flag('dry-run');
    const result = await catalogSource(ctx, args).prune(filter, policy, dryRun);
    if (ctx.json) printJson(ctx, result);
    else {
      for (const d of result.decisions) {
        const action = d.keep ? 'keep' : dryRun ? 'would remove' : 'removed';
        print(ctx, `${action.padEnd(12)}  ${d.vm}/${d.disk}  ${d.id}${d.why.length ? `  (${d.why.join(', ')})` : ''}`);
      }
      for (const p of result.problems) note(ctx, `left alone: ${p.problem}`);
      note(ctx, `${dryRun ? 'would free' : 'freed'} ${formatBytes(result.freedBytes)}`);
    }
    return result.problems.length ? 1 : 0;
  },
};

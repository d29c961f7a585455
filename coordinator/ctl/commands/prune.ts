/**
 * `headroomctl prune`: removes the backups a retention policy does not keep (catalog/retention.ts), disk by
 * disk, never one that a kept backup reads through. Local, like restore; `--dry-run` only says what it
 * would do.
 */
import { CatalogError } from '../../catalog/chain-rules';
import { ManifestStore } from '../../catalog/manifest-store';
import { applyRetention } from '../../catalog/retention';
import { parseString, parseUint32 } from '../args';
import type { Command } from '../command';
import { note, print, printJson } from '../context';
import { UsageError } from '../errors';
import { formatBytes } from '../human';

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'remove the backups a retention policy does not keep (local; --dry-run to see)',
  synopsis: '--dir DIR [--vm V] [--keep-last N] [--keep-daily N] [--keep-weekly N] [--dry-run]',
  description: [
    'For each disk: keeps the N latest backups, the latest of each of the N latest days and of the N latest',
    'weeks that have backups (UTC; weeks start on Monday), the latest backup in any case, and every backup a',
    'kept one reads through (an incremental needs its whole chain). Removes the rest, newest first.',
  ].join('\n'),
  options: [
    { name: 'dir', value: 'DIR', help: 'the backup directory', parse: parseString },
    { name: 'vm', value: 'V', help: 'only this VM', parse: parseString },
    { name: 'keep-last', value: 'N', help: 'keep the N latest backups', parse: parseUint32 },
    { name: 'keep-daily', value: 'N', help: 'keep the latest backup of each of the N latest days with backups', parse: parseUint32 },
    { name: 'keep-weekly', value: 'N', help: 'keep the latest backup of each of the N latest weeks with backups', parse: parseUint32 },
    { name: 'dry-run', help: 'say what would be removed, remove nothing' },
  ],
  async run(ctx, args) {
    const policy = { keepLast: args.get<number>('keep-last'), keepDaily: args.get<number>('keep-daily'), keepWeekly: args.get<number>('keep-weekly') };
    if (policy.keepLast === undefined && policy.keepDaily === undefined && policy.keepWeekly === undefined) {
      throw new UsageError('give at least one of --keep-last, --keep-daily, --keep-weekly');
    }
    const dryRun = args.flag('dry-run');
    let store: ManifestStore;
    let records;
    try {
      store = ManifestStore.open(args.require<string>('dir'));
      records = store.records(args.get<string>('vm'));
    } catch (err) {
      if (!(err instanceof CatalogError)) throw err;
      note(ctx, err.message);
      return 1;
    }
    const report = [];
    let freed = 0;
    for (const key of [...new Set(records.map((r) => `${r.vm}/${r.disk}`))].sort()) {
      const decision = applyRetention(records.filter((r) => `${r.vm}/${r.disk}` === key), policy);
      for (const r of decision.keep) report.push({ disk: key, id: r.id, action: 'keep', why: decision.why.get(r.id) ?? [] });
      for (const r of decision.remove) {
        if (!dryRun) store.remove(r);
        freed += r.fileBytes;
        report.push({ disk: key, id: r.id, action: dryRun ? 'would remove' : 'removed', why: [] });
      }
    }
    if (ctx.json) printJson(ctx, { dryRun, freedBytes: freed, backups: report });
    else {
      for (const r of report) print(ctx, `${r.action.padEnd(12)}  ${r.disk}  ${r.id}${r.why.length ? `  (${r.why.join(', ')})` : ''}`);
      note(ctx, `${dryRun ? 'would free' : 'freed'} ${formatBytes(freed)}`);
    }
    return 0;
  },
};

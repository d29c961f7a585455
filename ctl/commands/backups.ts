/**
 * `headroomctl backups`: what a backup catalog holds, one line per backup, oldest first, with why each full
 * backup was full; `--verify` recomputes every file's SHA-256. From a directory on this machine (--dir) or
 * from the coordinator's (../catalog-source.ts).
 */
import type { BackupInfo__Output } from '../../proto/generated/headroom/v1';
import { parsePositiveInt } from '../../common/util/cli-args';
import { MAX_LISTED_BACKUPS } from '../../host-backup/catalog/snapshot-wire';
import { CATALOG_OPTIONS, WHERE_HELP, catalogSource } from '../catalog-source';
import type { Command } from '../command';
import { note, print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { formatBytes, formatClock, formatSpan } from '../../common/util/human';
import { formatTable } from '../table';

function parseLimit(raw: string): number {
  const n = parsePositiveInt(raw);
  if (n > MAX_LISTED_BACKUPS) throw new Error(`at most ${MAX_LISTED_BACKUPS}`);
  return n;
}

/** A backup's KIND cell: full or incremental. */
export function kindName(b: Pick<BackupInfo__Output, 'kind'>): string {
  return b.kind === 'BACKUP_KIND_FULL' ? 'full' : 'incremental';
}

export const backupsCommand: Command = {
  name: 'backups',
  examples: ['backups --dir /var/backups/headroom', 'backups --vm web1 --limit 10 --verify'],
  summary:
    "list the backups of a catalog, and check their files with --verify (--dir DIR: local; else the coordinator's)",
  synopsis: '[--dir DIR] [--vm V] [--disk D] [--limit N] [--verify]',
  description: [
    'One line per backup, oldest first: when it was taken, full or incremental (and why full), bytes copied,',
    'file size, and whether its chain can be read back. --verify reads every file and compares its SHA-256',
    'with its manifest; the exit status is then 1 if any differs. A backup whose end nobody saw is listed',
    'as interrupted: the next backup of that disk will be full. A manifest that cannot be read is reported',
    'on stderr, and the exit status is 1.',
    '',
    WHERE_HELP,
  ].join('\n'),
  options: [
    ...CATALOG_OPTIONS,
    {
      name: 'limit',
      value: 'N',
      help: `only the N newest backups (default and most: ${MAX_LISTED_BACKUPS}; narrow with --vm, --disk)`,
      parse: parseLimit,
    },
    { name: 'verify', help: "recompute every file's SHA-256" },
  ],
  async run(ctx, args) {
    const source = catalogSource(ctx, args);
    const filter = { vm: args.get<string>('vm') ?? '', disk: args.get<string>('disk') ?? '' };
    if (filter.disk && !filter.vm) throw new UsageError('--disk needs --vm');
    const listing = await source.list(filter, args.get<number>('limit') ?? 0);
    const checksums = new Map<string, boolean>();
    if (args.flag('verify')) {
      await source.verify({ ...filter, id: '' }, (v) => {
        if (v.id) checksums.set(v.id, v.ok);
      });
    }
    const bad = [...checksums.values()].filter((ok) => !ok).length;
    const failed = bad > 0 || listing.problems.length > 0;
    if (ctx.json) {
      printJson(ctx, {
        ...listing,
        backups: listing.backups.map((b) => ({
          ...b,
          ...(checksums.has(b.id) && { checksumOk: checksums.get(b.id) }),
        })),
      });
      return failed ? 1 : 0;
    }
    const now = ctx.now();
    const verify = args.flag('verify');
    const columns = [
      { header: 'TAKEN' },
      { header: 'VM' },
      { header: 'DISK' },
      { header: 'KIND' },
      { header: 'ID' },
      { header: 'COPIED', align: 'right' as const },
      { header: 'FILE', align: 'right' as const },
      { header: 'TOOK', align: 'right' as const },
      { header: 'CHAIN' },
      ...(verify ? [{ header: 'SHA-256' }] : []),
      { header: 'WHY FULL', maxWidth: 60 },
    ];
    const cells = listing.backups.map((b) => [
      formatClock(b.takenUnixMs, now),
      b.vm,
      b.disk,
      kindName(b),
      b.id,
      formatBytes(b.bytes),
      formatBytes(b.fileBytes),
      formatSpan(b.durationMs),
      b.chainProblem || 'ok',
      ...(verify ? [checksums.get(b.id) === false ? 'MISMATCH' : 'ok'] : []),
      b.fullReason,
    ]);
    print(ctx, formatTable(columns, cells, { empty: `no backups in ${listing.dir}` }));
    for (const i of listing.interrupted)
      print(
        ctx,
        `interrupted: ${i.vm}/${i.disk} backup ${i.id} (its end was not seen; the next backup of the disk will be full)`,
      );
    if (listing.omitted) note(ctx, `${listing.omitted} older backup(s) not shown: narrow with --vm and --disk`);
    for (const p of listing.problems) note(ctx, `unreadable manifest: ${p.problem}`);
    if (bad) note(ctx, `${bad} file(s) do not match their manifest's SHA-256`);
    return failed ? 1 : 0;
  },
};

/**
 * `headroomctl backups`: what a backup directory holds (catalog/manifest-store.ts), one line per backup,
 * oldest first, with why each full backup was full; `--verify` recomputes every file's SHA-256. Local,
 * like restore: the coordinator is not contacted.
 */
import { CatalogError, chainTo } from '../../catalog/chain-rules';
import { ManifestStore } from '../../catalog/manifest-store';
import { parseString } from '../args';
import type { Command } from '../command';
import { note, print, printJson } from '../context';
import { formatBytes, formatClock, formatSpan } from '../human';
import { formatTable } from '../table';

export const backupsCommand: Command = {
  name: 'backups',
  summary: 'list the backups in a backup directory, and check their files with --verify (local)',
  synopsis: '--dir DIR [--vm V] [--verify]',
  description: [
    'One line per backup, oldest first: when it was taken, full or incremental (and why full), bytes copied,',
    'file size, and whether its chain can be read back. --verify reads every file and compares its SHA-256',
    'with its manifest; the exit status is then 1 if any differs. A backup whose end nobody saw is listed',
    'as interrupted: the next backup of that disk will be full.',
  ].join('\n'),
  options: [
    { name: 'dir', value: 'DIR', help: 'the backup directory', parse: parseString },
    { name: 'vm', value: 'V', help: 'only this VM', parse: parseString },
    { name: 'verify', help: "recompute every file's SHA-256" },
  ],
  async run(ctx, args) {
    const dir = args.require<string>('dir');
    let store: ManifestStore;
    let records;
    try {
      store = ManifestStore.open(dir);
      records = store.records(args.get<string>('vm')).sort((a, b) => a.takenAtMs - b.takenAtMs || a.disk.localeCompare(b.disk));
    } catch (err) {
      if (!(err instanceof CatalogError)) throw err;
      note(ctx, err.message);
      return 1;
    }
    const rows = [];
    let bad = 0;
    for (const r of records) {
      const same = records.filter((x) => x.vm === r.vm && x.disk === r.disk);
      let chain = store.fileIntact(r) ? 'ok' : 'file missing';
      if (chain === 'ok') {
        try {
          const links = chainTo(same, r);
          const missing = links.find((l) => !store.fileIntact(l));
          if (missing) chain = `needs missing ${missing.id}`;
        } catch (err) {
          chain = (err as Error).message;
        }
      }
      const verified = args.flag('verify') ? await store.verify(r) : undefined;
      if (verified && !verified.ok) bad++;
      rows.push({ record: r, chain, checksum: verified === undefined ? undefined : verified.ok ? 'ok' : 'MISMATCH' });
    }
    const interrupted = [...new Set(records.map((r) => `${r.vm}/${r.disk}`))].flatMap((key) => {
      const [vm, disk] = key.split('/');
      return store.interrupted(vm, disk).map((id) => ({ vm, disk, id }));
    });
    if (ctx.json) {
      printJson(ctx, { backups: rows, interrupted });
      return bad ? 1 : 0;
    }
    const now = ctx.now();
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
      ...(args.flag('verify') ? [{ header: 'SHA-256' }] : []),
      { header: 'WHY FULL', maxWidth: 60 },
    ];
    const cells = rows.map(({ record: r, chain, checksum }) => [
      formatClock(r.takenAtMs, now),
      r.vm,
      r.disk,
      r.kind,
      r.id,
      formatBytes(r.bytes),
      formatBytes(r.fileBytes),
      formatSpan(r.durationMs),
      chain,
      ...(checksum === undefined ? [] : [checksum]),
      r.fullReason ?? '',
    ]);
    print(ctx, formatTable(columns, cells, { empty: `no backups in ${store.dir}` }));
    for (const i of interrupted) print(ctx, `interrupted: ${i.vm}/${i.disk} backup ${i.id} (its end was not seen; the next backup of the disk will be full)`);
    if (bad) note(ctx, `${bad} file(s) do not match their manifest's SHA-256`);
    return bad ? 1 : 0;
  },
};

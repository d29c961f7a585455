/**
 * `headroomctl restore`: rebuilds a VM's disk as it was at a point in time from a backup directory
 * (catalog/restore.ts). Runs on whatever machine sees the directory, with qemu-img; the coordinator is not
 * contacted.
 */
import { CatalogError } from '../../host-backup/catalog/chain-rules';
import { ManifestStore } from '../../host-backup/catalog/manifest-store';
import { restoreDisk } from '../../host-backup/catalog/restore';
import { QemuImgError } from '../../host-backup/qemu-img';
import { parseString } from '../../common/util/cli-args';
import type { Command } from '../command';
import { note, print, printJson } from '../context';
import { formatBytes, formatClock, formatDateTime } from '../../common/util/human';

/** "now", or an ISO 8601 date and time with its zone ("2026-11-29T06:00:00Z", "…+01:00"). */
export function parseTime(raw: string): number {
  if (raw === 'now') return Number.MAX_SAFE_INTEGER;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(raw)) {
    throw new Error(`expected "now" or an ISO 8601 time with its zone such as 2026-11-29T06:00:00Z, got "${raw}"`);
  }
  const ms = Date.parse(raw);
  if (Number.isNaN(ms)) throw new Error(`"${raw}" is not a valid time`);
  return ms;
}

function parseFormat(raw: string): 'qcow2' | 'raw' {
  if (raw !== 'qcow2' && raw !== 'raw') throw new Error(`expected qcow2 or raw, got "${raw}"`);
  return raw;
}

export const restoreCommand: Command = {
  name: 'restore',
  examples: [
    'restore --dir /var/backups/headroom --vm web1 --to /tmp/web1.qcow2',
    'restore --dir /var/backups/headroom --vm web1 --to /tmp/web1.raw --format raw --at 2026-11-29T07:00:00Z',
  ],
  summary: "rebuild a VM's disk at a point in time from a backup directory (local, no coordinator)",
  synopsis: '--dir DIR --vm V --to FILE [--at TIME] [--disk D] [--format qcow2|raw] [--no-verify] [--force]',
  description: [
    'Picks the latest backup of the disk taken at or before --at, checks every file of its chain (size,',
    'SHA-256 from the manifests, and the qcow2 backing chain), and writes one standalone image with',
    '`qemu-img convert`. Needs qemu-img (Debian package qemu-utils) and read access to DIR; QEMU and the',
    'coordinator are not involved. See docs/qemu.md for doing the same with qemu-img alone.',
  ].join('\n'),
  options: [
    { name: 'dir', value: 'DIR', help: 'the backup directory (the one given to the qmp driver)', parse: parseString },
    { name: 'vm', value: 'V', help: 'the VM (required)', parse: parseString },
    {
      name: 'to',
      value: 'FILE',
      help: 'the image to write (required; must not exist without --force)',
      parse: parseString,
    },
    {
      name: 'at',
      value: 'TIME',
      help: 'ISO 8601 time with zone, or now (default: now, the latest backup)',
      parse: parseTime,
    },
    { name: 'disk', value: 'D', help: 'the disk (required when the VM has several)', parse: parseString },
    { name: 'format', value: 'FMT', help: 'qcow2 (default) or raw', parse: parseFormat },
    { name: 'no-verify', help: "skip the SHA-256 check of the chain's files" },
    { name: 'force', help: 'overwrite FILE if it exists' },
  ],
  async run(ctx, args) {
    const dir = args.require<string>('dir');
    const vm = args.require<string>('vm');
    const to = args.require<string>('to');
    try {
      const store = ManifestStore.open(dir);
      const result = await restoreDisk({
        store,
        vm,
        disk: args.get<string>('disk'),
        atMs: args.get<number>('at') ?? Number.MAX_SAFE_INTEGER,
        to,
        format: args.get<'qcow2' | 'raw'>('format') ?? 'qcow2',
        verify: !args.flag('no-verify'),
        overwrite: args.flag('force'),
      });
      if (ctx.json) {
        printJson(ctx, { vm, disk: result.disk, output: result.output, chain: result.chain });
        return 0;
      }
      for (const r of result.chain) {
        const why = r.kind === 'full' ? `full (${r.fullReason})` : `incremental on ${r.parentId}`;
        print(ctx, `${formatDateTime(r.takenAtMs)}  ${r.id}  ${formatBytes(r.bytes).padStart(9)}  ${why}`);
      }
      note(
        ctx,
        `restored ${vm}/${result.disk} as of ${formatClock(result.chain[result.chain.length - 1].takenAtMs, ctx.now())} into ${result.output}`,
      );
      return 0;
    } catch (err) {
      if (err instanceof CatalogError || err instanceof QemuImgError) {
        note(ctx, `restore failed: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
};

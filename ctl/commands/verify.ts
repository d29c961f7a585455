/**
 * `headroomctl verify`: recomputes the SHA-256 of backup files and compares each with its manifest, one
 * line per file as it is checked, from a directory on this machine (--dir) or on the coordinator's host.
 * Exits 1 when any file differs or a manifest cannot be read.
 */
import { parseString } from '../../common/util/cli-args';
import { CATALOG_OPTIONS, WHERE_HELP, catalogSource } from '../catalog-source';
import type { Command } from '../command';
import { note, print, printJsonLine } from '../context';
import { UsageError } from '../../common/util/usage-error';

export const verifyCommand: Command = {
  name: 'verify',
  examples: ['verify --dir /var/backups/headroom', 'verify --vm web1 --disk drive-virtio0'],
  summary: "check backup files against their manifests' SHA-256 (--dir DIR: local; else the coordinator's)",
  synopsis: '[--dir DIR] [--vm V] [--disk D] [--id ID]',
  description: [
    'Reads every backup file of the catalog (or of one VM, disk or backup) and compares its SHA-256 with the',
    'one its manifest recorded when it was written; prints one line per file as soon as it is checked (one',
    'JSON object per line with --json). Exit status: 0 every file matches; 1 a file differs or is missing,',
    'or a manifest cannot be read.',
    '',
    WHERE_HELP,
  ].join('\n'),
  options: [...CATALOG_OPTIONS, { name: 'id', value: 'ID', help: 'only this backup', parse: parseString }],
  async run(ctx, args) {
    const request = {
      vm: args.get<string>('vm') ?? '',
      disk: args.get<string>('disk') ?? '',
      id: args.get<string>('id') ?? '',
    };
    if (request.disk && !request.vm) throw new UsageError('--disk needs --vm');
    const source = catalogSource(ctx, args);
    let checked = 0;
    let bad = 0;
    await source.verify(request, (v) => {
      checked++;
      if (!v.ok) bad++;
      if (ctx.json) printJsonLine(ctx, v);
      else if (!v.id) print(ctx, `BAD  unreadable manifest: ${v.problem}`);
      else print(ctx, `${v.ok ? 'ok ' : 'BAD'}  ${v.vm}/${v.disk}  ${v.id}${v.ok ? '' : `  ${v.problem}`}`);
    });
    note(
      ctx,
      bad
        ? `${bad} of ${checked} do not match (${source.where})`
        : `${checked} file(s) match their manifests (${source.where})`,
    );
    return bad ? 1 : 0;
  },
};

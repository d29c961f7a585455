/**
 * `headroomctl libvirt-backup`: the command line of one backup of a libvirt domain through libvirt's
 * backup API (host-backup/libvirt-backup.ts), without a token. `host-backup --driver libvirt` runs it
 * under a HYPERVISOR token as its command; SIGTERM (lease lost) or Ctrl-C aborts libvirt's job.
 */
import { type OptionSpec, parseString } from '../../common/util/cli-args';
import { formatBytes } from '../../common/util/human';
import { UsageError } from '../../common/util/usage-error';
import type { DiskSpec } from '../../host-backup/hypervisor/block-nodes';
import { DEFAULT_LIBVIRT_URI } from '../../host-backup/hypervisor/libvirt-virsh';
import { runLibvirtBackup } from '../../host-backup/libvirt-backup';
import type { Command } from '../command';
import { BACKUP_SET_OPTIONS, QUIESCE_HELP, QUIESCE_OPTIONS, runDriverCommand } from './qmp-backup';

/** The libvirt connection: the option only the libvirt driver takes. */
export const LIBVIRT_URI_OPTION: OptionSpec = {
  name: 'libvirt-uri',
  value: 'URI',
  help: `libvirt's connection URI, as virsh -c takes it (default ${DEFAULT_LIBVIRT_URI})`,
  parse: parseString,
};

/** The options libvirt-backup takes, which host-backup --driver libvirt passes through. */
export const LIBVIRT_BACKUP_OPTIONS: OptionSpec[] = [LIBVIRT_URI_OPTION, ...BACKUP_SET_OPTIONS];

/** libvirt names a domain's disks by their target (vda): the catalog uses that name too. */
function targets(disks: DiskSpec[] | undefined): string[] | undefined {
  const renamed = disks?.find((d) => d.name !== d.node);
  if (renamed)
    throw new UsageError(`--disk ${renamed.name}=${renamed.node}: name libvirt's disks by their target (vda)`);
  return disks?.map((d) => d.name);
}

export const libvirtBackupCommand: Command = {
  name: 'libvirt-backup',
  examples: [
    'libvirt-backup --vm web1 --target /var/backups/headroom',
    'libvirt-backup --vm 4c4c4544-0042-3510-8052-b4c04f4d4e31 --target /var/backups/headroom --disk vda --full',
  ],
  summary:
    "back up a running libvirt domain's disks through libvirt's backup API, full or incremental (no token; see host-backup --driver libvirt)",
  synopsis:
    '--vm NAME|UUID --target DIR [--libvirt-uri URI] [--disk LIST] [--full] [--max-incrementals N] [--speed RATE] [--quiesce MODE] [--quiesce-hold DURATION]',
  description: [
    'Backs up every disk of the domain (not cdroms, floppies or read-only disks; --disk vda,vdb to choose) in',
    'one libvirt backup job (virsh backup-begin, push mode) with a checkpoint: the first backup is full, later',
    "ones copy only what changed since the latest backup's checkpoint. The next backup is full, and says why,",
    'when that checkpoint or its bitmap is gone (deleted, the domain redefined, a transient domain restarted),',
    'the disk was resized, or a file of the chain is gone. The catalog names the domain by its UUID. Backups',
    "are qcow2 files with a JSON manifest each in DIR/UUID/DISK; restore with 'headroomctl restore' or",
    "qemu-img alone (docs/libvirt.md). 'headroomctl prune' deletes the checkpoints of the backups it removes.",
    "--speed limits each disk's copy (QEMU's block job speed, through virsh blockjob --bandwidth). Ctrl-C or",
    'SIGTERM aborts the job (virsh domjobabort) and deletes its checkpoint.',
    '',
    ...QUIESCE_HELP,
    'libvirt-backup quiesces only under a token: run by host-backup --driver libvirt, which passes it in the environment.',
    '',
    'Exit status: 0 done, 1 failed (also: --quiesce require and the guest was not quiesced), 75 cancelled.',
  ].join('\n'),
  options: [
    { name: 'vm', value: 'V', help: "the domain's name or UUID (required)", parse: parseString },
    ...LIBVIRT_BACKUP_OPTIONS,
    ...QUIESCE_OPTIONS,
  ],
  async run(ctx, args) {
    const domain = args.require<string>('vm');
    const disks = targets(args.get<DiskSpec[]>('disk'));
    return runDriverCommand(ctx, args, 'aborting the backup job', (common, say) =>
      runLibvirtBackup({
        ...common,
        domain,
        uri: args.get<string>('libvirt-uri') ?? DEFAULT_LIBVIRT_URI,
        disks,
        onProgress: ({ done, total }) => say(() => `${formatBytes(done)} of ${formatBytes(total)}`),
      }),
    );
  },
};

/**
 * Checkpoints are managed as the chain is: once a prune removed backups, the libvirt checkpoints they
 * created go too, unless a backup left in the catalog still names them (one checkpoint covers every disk of
 * a set, and a prune may keep another disk's backup of the same set). libvirt deletes the checkpoint's
 * bitmaps with it (`checkpoint-delete` without `--metadata`, which would leave bitmaps recording for
 * nothing), merging them into the parent checkpoint's, which only makes that checkpoint's increments larger,
 * never incomplete. A checkpoint or domain that is already gone needs nothing.
 */
import type { Logger } from '../../common/util/log';
import type { BackupRecord } from '../catalog/chain-rules';
import type { ManifestStore } from '../catalog/manifest-store';
import { Virsh, VirshError } from './libvirt-virsh';

const GONE = /checkpoint not found|domain not found|no domain with matching/i;

/**
 * Deletes the checkpoints of `removed` that no record of `store` names any more; resolves to a problem
 * per checkpoint that could not be deleted (the backup itself is gone either way).
 */
export async function releaseCheckpoints(
  store: ManifestStore,
  removed: readonly BackupRecord[],
  log: Logger,
  virshFor: (uri: string) => Virsh = (uri) => new Virsh(uri),
): Promise<string[]> {
  const candidates = new Map<string, BackupRecord>();
  for (const r of removed) if (r.checkpoint !== undefined) candidates.set(`${r.vm}/${r.checkpoint}`, r);
  const problems: string[] = [];
  for (const r of candidates.values()) {
    if (store.records(r.vm).some((kept) => kept.checkpoint === r.checkpoint)) continue;
    try {
      await virshFor(r.libvirtUri!).run(['checkpoint-delete', r.vm, r.checkpoint!]);
      log.info('deleted the checkpoint of a pruned backup', { vm: r.vm, checkpoint: r.checkpoint });
    } catch (err) {
      if (err instanceof VirshError && GONE.test(err.detail)) continue;
      const problem = `checkpoint ${r.checkpoint} of domain ${r.vm}: ${(err as Error).message}`;
      log.warn('could not delete the checkpoint of a pruned backup', { problem });
      problems.push(problem);
    }
  }
  return problems;
}

/**
 * Which backups a hypervisor run took because the VM's incremental chain broke, read from the backup
 * catalogs the coordinator knows (backups.dir and its hypervisor jobs' targets) after each successful
 * HYPERVISOR run: only that VM's manifests, once per run, so a scrape never reads the catalog.
 */
import { chainBreak, type FullReasonCode } from '../../host-backup/catalog/chain-rules';
import { ManifestStore } from '../../host-backup/catalog/manifest-store';
import type { Logger } from '../../common/util/log';

export type ChainBreaks = (vmNames: readonly string[], since: number) => FullReasonCode[];

/** The reasons of the chain-breaking full backups of these VMs taken at or after `since` (Unix ms). */
export function catalogChainBreaks(dirs: readonly string[], log: Logger): ChainBreaks {
  const unique = [...new Set(dirs)];
  return (vmNames, since) => {
    const breaks: FullReasonCode[] = [];
    for (const dir of unique) {
      let store: ManifestStore;
      try {
        store = ManifestStore.open(dir);
      } catch {
        // Not a catalog (yet): nothing was backed up there.
        continue;
      }
      for (const vm of new Set(vmNames)) {
        let scanned: ReturnType<ManifestStore['scan']>;
        try {
          scanned = store.scan(vm);
        } catch {
          // A name the catalog could not hold (its directories are named for VMs).
          continue;
        }
        const { records, problems } = scanned;
        for (const p of problems) log.debug('a manifest the chain-break metric could not read', { ...p });
        // One break per backup set (all its disks were taken together).
        const sets = new Map<string, FullReasonCode>();
        for (const r of records) {
          const code = r.takenAtMs >= since ? chainBreak(r) : undefined;
          if (code) sets.set(r.setId, code);
        }
        breaks.push(...sets.values());
      }
    }
    return breaks;
  };
}

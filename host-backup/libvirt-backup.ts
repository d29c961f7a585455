/**
 * One backup of a running libvirt domain into a backup directory (the `libvirt` driver,
 * hypervisor/libvirt-driver.ts), without a token of its own: `headroomctl libvirt-backup`, which
 * `host-backup --driver libvirt` runs under a HYPERVISOR token as its command. The domain is named by
 * name or UUID; the catalog knows it by its UUID (the SMBIOS UUID its agent reports), so that both names
 * reach the same chain. Cancelling aborts libvirt's job and deletes the checkpoint it created.
 */
import type { Logger } from '../common/util/log';
import { CatalogError } from './catalog/chain-rules';
import { ManifestStore } from './catalog/manifest-store';
import { childCopyControl } from './copy-control-channel';
import { type DriverRunOutcome, type DriverRunReporting, concludeRun, quiescePoint, runDriver } from './driver-run';
import type { CopyControl } from './hypervisor/copy-control';
import { DomainStateError, describeDomain } from './hypervisor/libvirt-domain';
import { backupDomain } from './hypervisor/libvirt-driver';
import { Virsh, VirshError } from './hypervisor/libvirt-virsh';
import { LibvirtXmlError } from './hypervisor/libvirt-xml';
import { QemuImgError } from './qemu-img';

export interface LibvirtBackupRunOptions extends DriverRunReporting {
  /** The domain's name or UUID. */
  domain: string;
  /** libvirt's connection URI (virsh -c). */
  uri: string;
  /** The backup directory, made a catalog on first use. */
  target: string;
  /** Target devices (vda …); absent: every disk of the domain but cdroms, floppies and read-only ones. */
  disks?: string[];
  forceFull: boolean;
  maxIncrementals?: number;
  /** Limit on each disk's copy, bytes/s; absent: none. */
  speed?: number;
  /** Wall clock, Unix ms: names backups and times them. */
  now(): number;
  log: Logger;
  onProgress?(progress: { done: number; total: number }): void;
  /** Handed the copy's controls once it runs, beside host-backup's channel (copyControlDir). */
  onCopy?(control: CopyControl): void;
}

/** Backs the domain up once, as the module header says. */
export async function runLibvirtBackup(o: LibvirtBackupRunOptions): Promise<DriverRunOutcome> {
  return runDriver(o, [CatalogError, QemuImgError, VirshError, DomainStateError, LibvirtXmlError], async () => {
    const store = ManifestStore.open(o.target, { create: true });
    const virsh = new Virsh(o.uri);
    // The job starts at the budget in force, so that not a chunk is copied above it.
    const copy = childCopyControl(o.copyControlDir, o.speed ?? 0, o.log);
    const result = await backupDomain(virsh, {
      domain: await describeDomain(virsh, o.domain),
      disks: o.disks,
      store,
      forceFull: o.forceFull,
      maxIncrementals: o.maxIncrementals,
      speed: copy.startSpeed,
      snapshotPoint: quiescePoint(o.quiesce),
      now: o.now,
      signal: o.signal,
      log: o.log,
      onProgress: o.onProgress,
      onCopyStarted: (control) => {
        o.onCopy?.(control);
        return copy.onCopyStarted?.(control);
      },
    });
    return concludeRun(o, result);
  });
}

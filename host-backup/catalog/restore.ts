/**
 * Restore: rebuilds one disk of a VM as it was at a point in time, from a catalog directory alone, with
 * qemu-img alone — the chain is chosen by the catalog's rules, each file checked (size, SHA-256, and that
 * the qcow2 backing chain is the one the manifests describe), then `qemu-img convert` of the chain's top
 * writes a standalone image. Needs neither QEMU running nor the coordinator.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QemuImg } from '../qemu-img';
import { type BackupRecord, CatalogError, restoreChain } from './chain-rules';
import type { ManifestStore } from './manifest-store';

export interface RestoreOptions {
  store: ManifestStore;
  vm: string;
  /** Required when the VM has more than one disk in the catalog. */
  disk?: string;
  atMs: number;
  /** The image to write; it must not exist unless `overwrite`. */
  to: string;
  format: 'qcow2' | 'raw';
  /** Recompute every file's SHA-256 first (reads the whole chain). */
  verify: boolean;
  overwrite?: boolean;
  qemuImg?: QemuImg;
}

export interface RestoreResult {
  disk: string;
  /** Oldest (the full backup) first. */
  chain: BackupRecord[];
  output: string;
}

/** The disk of `vm` to restore: the one named, or the only one. */
function chooseDisk(records: readonly BackupRecord[], vm: string, disk: string | undefined, dir: string): string {
  const disks = [...new Set(records.map((r) => r.disk))].sort();
  if (disks.length === 0) throw new CatalogError(`no backups of VM ${vm} in ${dir}`);
  if (disk !== undefined) {
    if (!disks.includes(disk))
      throw new CatalogError(`VM ${vm} has no backups of disk ${disk} (it has: ${disks.join(', ')})`);
    return disk;
  }
  if (disks.length > 1)
    throw new CatalogError(`VM ${vm} has ${disks.length} disks (${disks.join(', ')}): choose one with --disk`);
  return disks[0];
}

export async function restoreDisk(o: RestoreOptions): Promise<RestoreResult> {
  const qemuImg = o.qemuImg ?? new QemuImg();
  const all = o.store.records(o.vm);
  const disk = chooseDisk(all, o.vm, o.disk, o.store.dir);
  const chain = restoreChain(
    all.filter((r) => r.disk === disk),
    o.atMs,
  );
  for (const r of chain) {
    if (!o.store.fileIntact(r))
      throw new CatalogError(`backup ${r.id}: ${o.store.pathOf(r)} is missing or not ${r.fileBytes} bytes`);
    if (o.verify) {
      const v = await o.store.verify(r);
      if (!v.ok) throw new CatalogError(`backup ${r.id}: ${v.problem}`);
    }
  }
  // The qcow2 headers decide what convert reads: they must name exactly the chain the manifests describe.
  const top = chain[chain.length - 1];
  const onDisk = (await qemuImg.backingChain(o.store.pathOf(top))).map((e) =>
    path.resolve(path.dirname(o.store.pathOf(top)), e.filename),
  );
  const expected = [...chain].reverse().map((r) => o.store.pathOf(r));
  if (onDisk.length !== expected.length || onDisk.some((f, i) => f !== expected[i])) {
    throw new CatalogError(
      `backup ${top.id}: its qcow2 backing chain is ${onDisk.join(' → ')}, the catalog says ${expected.join(' → ')}`,
    );
  }

  const output = path.resolve(o.to);
  if (fs.existsSync(output) && !o.overwrite) throw new CatalogError(`${output} exists; remove it or pass --force`);
  // Written beside, then renamed: a failed restore never leaves something that looks like a disk image.
  const partial = `${output}.partial-${process.pid}`;
  try {
    await qemuImg.convert(o.store.pathOf(top), partial, o.format);
    fs.renameSync(partial, output);
  } finally {
    fs.rmSync(partial, { force: true });
  }
  return { disk, chain, output };
}

/**
 * What the libvirt driver asks libvirt about a domain: its identity (a name or UUID resolves to both), its
 * disks that can be backed up (not cdroms, floppies or read-only disks), each disk's size, and its
 * checkpoints as the catalog's rules need them (catalog/chain-rules.ts: a checkpoint covers a disk with a
 * bitmap libvirt still finds, or it does not).
 */
import type { BitmapObservation, CheckpointObservation } from '../catalog/chain-rules';
import { child, childrenNamed, parseXml } from './libvirt-xml';
import { type Virsh, VirshError, parseFields } from './libvirt-virsh';

/** The domain cannot be backed up as asked (not running, no such disk, a disk libvirt cannot checkpoint). */
export class DomainStateError extends Error {
  override readonly name = 'DomainStateError';
}

export interface DomainDisk {
  /** The disk's target device (vda): libvirt's name for it in backup and checkpoint XML. */
  target: string;
  /** The image's format (qcow2, raw …), as the domain's <driver type> says. */
  format: string;
}

export interface DomainFacts {
  name: string;
  uuid: string;
  running: boolean;
  persistent: boolean;
  disks: DomainDisk[];
}

/** The domain `vm` (a name or a UUID) as libvirt describes it. Throws VirshError when there is no such domain. */
export async function describeDomain(virsh: Virsh, vm: string): Promise<DomainFacts> {
  const info = parseFields(await virsh.run(['dominfo', vm]), ':');
  const xml = parseXml(await virsh.run(['dumpxml', vm]));
  const disks: DomainDisk[] = [];
  for (const disk of childrenNamed(child(xml, 'devices') ?? xml, 'disk')) {
    if ((disk.attrs.device ?? 'disk') !== 'disk' || child(disk, 'readonly')) continue;
    const target = child(disk, 'target')?.attrs.dev;
    if (!target || !child(disk, 'source')) continue;
    disks.push({ target, format: child(disk, 'driver')?.attrs.type ?? 'raw' });
  }
  return {
    name: info.get('Name') ?? vm,
    uuid: info.get('UUID') ?? vm,
    running: info.get('State') === 'running',
    persistent: info.get('Persistent') === 'yes',
    disks,
  };
}

/** The disk's size in bytes (its capacity as the guest sees it). */
export async function diskCapacity(virsh: Virsh, domain: string, target: string): Promise<number> {
  const capacity = Number(parseFields(await virsh.run(['domblkinfo', domain, target]), ':').get('Capacity'));
  if (!Number.isSafeInteger(capacity)) throw new VirshError(['domblkinfo', target], 'no capacity in its answer');
  return capacity;
}

/** The names of the domain's checkpoints. */
export async function listCheckpoints(virsh: Virsh, domain: string): Promise<string[]> {
  return (await virsh.run(['checkpoint-list', domain, '--name'])).split('\n').filter(Boolean);
}

/** A checkpoint on one disk, with the bytes its bitmap holds dirty (when libvirt could size it). */
export interface CheckpointOnDisk extends CheckpointObservation {
  dirtyBytes?: number;
}

/** What libvirt reports of a bitmap it found and could size: libvirt keeps them persistent and recording. */
const USABLE_BITMAP: BitmapObservation = { persistent: true, recording: true, inconsistent: false, busy: false };

/**
 * What libvirt knows of checkpoint `name` on each disk, by target: the disks it covers with a bitmap that
 * libvirt finds and can size (`checkpoint-dumpxml --size`, which leaves out the size of a bitmap that is
 * missing or broken). Undefined when the checkpoint is not there.
 */
export async function observeCheckpoint(
  virsh: Virsh,
  domain: string,
  name: string,
): Promise<Map<string, CheckpointOnDisk> | undefined> {
  let text: string;
  try {
    text = await virsh.run(['checkpoint-dumpxml', domain, name, '--size', '--no-domain']);
  } catch (err) {
    if (err instanceof VirshError && /checkpoint not found/i.test(err.detail)) return undefined;
    throw err;
  }
  const disks = new Map<string, CheckpointOnDisk>();
  for (const d of child(parseXml(text), 'disks')?.children.filter((c) => c.name === 'disk') ?? []) {
    const usable = d.attrs.checkpoint === 'bitmap' && d.attrs.size !== undefined;
    disks.set(d.attrs.name, usable ? { bitmap: USABLE_BITMAP, dirtyBytes: Number(d.attrs.size) } : {});
  }
  return disks;
}

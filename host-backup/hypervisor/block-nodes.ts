/**
 * What the qmp driver asks QEMU about its block nodes: which disks a QEMU process has (drives, or a
 * storage daemon's exports), the node behind a name, and what the catalog's rules need to know of it
 * (size, and the state of the catalog's dirty bitmap).
 */
import type { BitmapObservation, DiskObservation } from '../catalog/chain-rules';
import type { QmpClient } from './qmp-client';

/** A disk to back up: its name in the catalog, and the QMP node or device name that holds its image. */
export interface DiskSpec {
  name: string;
  node: string;
}

/** What QMP tells about a block node (query-named-block-nodes). */
export interface NodeInfo {
  'node-name': string;
  drv: string;
  image: { 'virtual-size': number };
  'dirty-bitmaps'?: Array<{
    name: string;
    persistent: boolean;
    recording: boolean;
    busy: boolean;
    inconsistent?: boolean;
  }>;
}

/** Finds the node behind a node name, or behind a device's name (query-block) as `-drive` guests have. */
export async function findNode(client: QmpClient, name: string): Promise<NodeInfo> {
  const nodes = await client.execute<NodeInfo[]>('query-named-block-nodes', { flat: true });
  let node = nodes.find((n) => n['node-name'] === name);
  if (!node) {
    const devices =
      await client.execute<Array<{ device: string; qdev?: string; inserted?: { 'node-name': string } }>>('query-block');
    const device = devices.find((d) => d.device === name || d.qdev === name);
    const nodeName = device?.inserted?.['node-name'];
    node = nodeName === undefined ? undefined : nodes.find((n) => n['node-name'] === nodeName);
  }
  if (!node) throw new Error(`QEMU has no block node or device named "${name}"`);
  return node;
}

/**
 * The disks of the QEMU process, when none are named: a VM's drives with a medium (query-block), or what
 * a qemu-storage-daemon exports (query-block-exports), each named after its device or node.
 */
export async function discoverDisks(client: QmpClient): Promise<DiskSpec[]> {
  const devices =
    await client.execute<Array<{ device: string; qdev?: string; inserted?: { 'node-name': string } }>>('query-block');
  // -drive guests have device names; -blockdev guests (libvirt) only node names.
  const drives = devices.flatMap((d) => (d.inserted ? [d.device || d.inserted['node-name']] : []));
  if (drives.length) return drives.map((n) => ({ name: n, node: n }));
  const exports = await client.execute<Array<{ 'node-name': string }>>('query-block-exports').catch(() => []);
  return [...new Set(exports.map((e) => e['node-name']))].map((n) => ({ name: n, node: n }));
}

export function observe(node: NodeInfo, bitmap: string): DiskObservation {
  const b = node['dirty-bitmaps']?.find((x) => x.name === bitmap);
  const observed: BitmapObservation | undefined = b && {
    persistent: b.persistent,
    recording: b.recording,
    inconsistent: b.inconsistent === true,
    busy: b.busy,
  };
  return { virtualSize: node.image['virtual-size'], bitmap: observed };
}

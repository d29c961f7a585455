/**
 * `headroomctl libvirt-backup` of a real guest (a libvirt domain under TCG) whose kernel writes known
 * patterns at known offsets of its second virtio disk (dd through the guest's block layer, flushed):
 * each incremental holds exactly the clusters written since the backup before it, every point of the
 * chain restores byte-identical with `qemu-img` alone, and a checkpoint deleted behind our back (its
 * libvirt metadata, `checkpoint-delete --metadata`) makes the next backup full, saying why in its manifest.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { BackupRecord } from '../../host-backup/catalog/chain-rules';
import { ManifestStore } from '../../host-backup/catalog/manifest-store';
import { virsh } from '../helpers/libvirtd';
import { runCtl } from '../integration/ctl/ctl-process';
import { CLUSTER, KiB, MiB } from '../integration/hypervisor/libvirt-fixture';
import { makeBlockDisk, makeExt4Disk } from './harness/disk';
import { attachConsolesOnFailure, type Guest, vmTempDir } from './harness/guest';
import { bootLibvirtGuest } from './harness/libvirt-guest';

const run = promisify(execFile);
const DISK_MIB = 16;
/** dd's block size: offsets and lengths below are multiples of it, many not of a page or a cluster. */
const SECTOR = 512;

interface Write {
  offset: number;
  length: number;
  byte: number;
}

/** [start, end) byte ranges, sorted and merged. */
type Ranges = Array<[number, number]>;

function merge(ranges: Ranges): Ranges {
  const out: Ranges = [];
  for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** The clusters `writes` touch, as byte ranges. */
const clustersOf = (writes: Write[]): Ranges =>
  merge(
    writes.map((w) => [Math.floor(w.offset / CLUSTER) * CLUSTER, Math.ceil((w.offset + w.length) / CLUSTER) * CLUSTER]),
  );

/** What `qcow2` itself holds (not its backing chain): `qemu-img map` entries at depth 0. */
async function ownRanges(qcow2: string): Promise<Ranges> {
  const { stdout } = await run('qemu-img', ['map', '--output=json', qcow2]);
  const map = JSON.parse(stdout) as Array<{
    start: number;
    length: number;
    depth: number;
    data: boolean;
    zero: boolean;
  }>;
  return merge(map.filter((e) => e.depth === 0 && (e.data || e.zero)).map((e) => [e.start, e.start + e.length]));
}

describe('VM: libvirt incrementals of the blocks a real guest wrote', function () {
  let guest: Guest | undefined;
  let dir: string;
  let target: string;
  /** The disk as the guest has written it so far. */
  const expected = Buffer.alloc(DISK_MIB * MiB);
  /** The latest backup of the chain the first test makes. */
  let latest: BackupRecord | undefined;
  attachConsolesOnFailure(() => [guest]);

  before(async () => {
    dir = vmTempDir();
    target = path.join(dir, 'backups');
    guest = await bootLibvirtGuest({
      disks: [
        { path: makeExt4Disk(path.join(dir, 'root.qcow2'), { sizeMiB: 16 }), mountPoint: '/mnt/data' },
        { path: makeBlockDisk(path.join(dir, 'blocks.qcow2'), DISK_MIB) },
      ],
    });
  });

  after(async () => {
    await guest?.destroy();
  });

  /** Writes each in the guest, through its page cache to vdb, flushed (conv=fsync), and into `expected`. */
  async function guestWrites(writes: Write[]): Promise<void> {
    for (const w of writes) {
      assert.ok(w.offset % SECTOR === 0 && w.length % SECTOR === 0);
      await guest!.sh(
        `dd if=/dev/zero bs=${SECTOR} count=${w.length / SECTOR} 2>/dev/null | tr '\\000' '\\${w.byte.toString(8)}' | ` +
          `dd of=/dev/vdb bs=${SECTOR} seek=${w.offset / SECTOR} conv=notrunc,fsync 2>/dev/null`,
      );
      expected.fill(w.byte, w.offset, w.offset + w.length);
    }
  }

  /** `headroomctl libvirt-backup` of vdb; the new backup's record (files sort by name, not time, within a second). */
  async function backup(): Promise<BackupRecord> {
    const before = new Set(records().map((r) => r.id));
    const r = await runCtl(['libvirt-backup', '--vm', guest!.name, '--target', target, '--disk', 'vdb']);
    assert.equal(r.code, 0, r.stderr);
    const added = records().filter((r) => !before.has(r.id));
    assert.equal(added.length, 1);
    return added[0];
  }

  const records = () => (fs.existsSync(target) ? ManifestStore.open(target).records(guest!.uuid, 'vdb') : []);

  /** Restores `record` with qemu-img alone (it follows the chain of backing files) and checks it against `expected`. */
  async function assertRestores(record: BackupRecord): Promise<void> {
    const out = path.join(dir, `${record.id}.raw`);
    await run('qemu-img', ['convert', '-O', 'raw', ManifestStore.open(target).pathOf(record), out]);
    const restored = fs.readFileSync(out);
    fs.rmSync(out);
    assert.ok(restored.equals(expected), `${record.id} (${record.kind}) restores byte-identical`);
  }

  it('full, then two incrementals holding exactly the clusters written, each restoring byte-identical', async () => {
    await guestWrites([{ offset: 0, length: 1 * MiB, byte: 0x11 }]);
    const full = await backup();
    assert.equal(full.kind, 'full');
    await assertRestores(full);

    // Unaligned to pages and clusters; the second one straddles clusters 47 and 48.
    const first = [
      { offset: 100 * SECTOR, length: 8 * SECTOR, byte: 0x22 },
      { offset: 3 * MiB - 4 * SECTOR, length: 8 * SECTOR, byte: 0x23 },
    ];
    await guestWrites(first);
    const inc1 = await backup();
    assert.deepEqual([inc1.kind, inc1.parentId], ['incremental', full.id]);
    assert.deepEqual(await ownRanges(ManifestStore.open(target).pathOf(inc1)), clustersOf(first));
    await assertRestores(inc1);

    // Over the full's data, and 3 1/8 clusters from a cluster boundary.
    const second = [
      { offset: 512 * KiB + 2 * SECTOR, length: 2 * SECTOR, byte: 0x33 },
      { offset: 10 * MiB, length: 200 * KiB, byte: 0x34 },
    ];
    await guestWrites(second);
    const inc2 = await backup();
    assert.deepEqual([inc2.kind, inc2.parentId], ['incremental', inc1.id]);
    assert.deepEqual(await ownRanges(ManifestStore.open(target).pathOf(inc2)), clustersOf(second));
    await assertRestores(inc2);
    latest = inc2;
  });

  it('makes the next backup full, saying why, when the checkpoint was deleted behind our back', async () => {
    assert.ok(latest?.checkpoint, 'the previous test left a chain with a checkpoint');
    // libvirt forgets the checkpoint; the bitmap stays in the image, recording for nothing.
    await virsh('checkpoint-delete', guest!.name, latest.checkpoint, '--metadata');
    await guestWrites([{ offset: 5 * MiB, length: 4 * SECTOR, byte: 0x44 }]);
    const next = await backup();
    assert.equal(next.kind, 'full');
    assert.match(next.fullReason ?? '', new RegExp(`checkpoint ${latest.checkpoint} is missing: it was deleted`));
    await assertRestores(next);
  });
});

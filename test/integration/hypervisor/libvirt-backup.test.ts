/**
 * The libvirt driver against real libvirt and a running QEMU: full then incremental backups of every disk
 * of a domain in one libvirt backup job, each incremental holding exactly the clusters written since, and
 * every point restoring byte-identical with qemu-img alone (as docs/libvirt.md says) and with headroomctl.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { virsh } from '../../helpers/libvirtd';
import { runCtl } from '../ctl/ctl-process';
import { ownClusters } from '../host-backup/storage-daemon';
import { CLUSTER, MiB, sameContent, useLibvirtFixture } from './libvirt-fixture';

const run = promisify(execFile);

describe('libvirt driver: backups through libvirt’s backup API', function () {
  this.timeout(120_000);
  const f = useLibvirtFixture({ diskSizes: [8 * MiB, 4 * MiB] });

  it('backs up every disk (not the cdrom) full, then incremental from the checkpoint, each point restorable with qemu-img alone', async () => {
    await f.domain.write('vda', 0, CLUSTER, 0x11);
    const first = (await f.backup()).result!;
    assert.deepEqual(
      first.disks.map((d) => [d.disk, d.record?.kind, d.record?.fullReason]),
      [
        ['vda', 'full', 'no previous backup of this disk in the catalog'],
        ['vdb', 'full', 'no previous backup of this disk in the catalog'],
      ],
    );
    const checkpoint = first.disks[0].record!.checkpoint!;
    assert.equal(first.disks[1].record!.checkpoint, checkpoint, 'one checkpoint for the set');
    assert.match(await virsh('checkpoint-list', f.domain.name, '--name'), new RegExp(`^${checkpoint}$`, 'm'));
    const atFirst = { vda: await f.copyNow('vda', 'vda-1'), vdb: await f.copyNow('vdb', 'vdb-1') };

    await f.domain.write('vda', 1 * MiB, CLUSTER, 0x5a);
    await f.domain.write('vdb', 3 * MiB, 2 * CLUSTER, 0x22);
    const second = (await f.backup()).result!;
    const [vda, vdb] = second.disks.map((d) => d.record!);
    assert.equal(vda.kind, 'incremental');
    assert.equal(vda.parentId, first.disks[0].record!.id);
    assert.notEqual(vda.checkpoint, checkpoint, 'each backup makes its own checkpoint');
    assert.deepEqual(await ownClusters(f.store.pathOf(vda)), [[1 * MiB, CLUSTER]]);
    assert.deepEqual(await ownClusters(f.store.pathOf(vdb)), [[3 * MiB, 2 * CLUSTER]]);
    const atSecond = { vda: await f.copyNow('vda', 'vda-2'), vdb: await f.copyNow('vdb', 'vdb-2') };

    // docs/libvirt.md, "Restore without Headroom": qemu-img convert follows the backing chain.
    for (const [records, copies] of [
      [first.disks.map((d) => d.record!), atFirst],
      [[vda, vdb], atSecond],
    ] as const) {
      for (const r of records) {
        const out = path.join(f.dir, `restored-${r.id}.raw`);
        await run('qemu-img', ['convert', '-O', 'raw', f.store.pathOf(r), out]);
        assert.ok(await sameContent(out, copies[r.disk as 'vda' | 'vdb']), `${r.disk} ${r.kind} restores as it was`);
      }
    }
  });

  it('works with headroomctl backups, verify and restore, and by the domain’s name as by its UUID', async () => {
    await f.domain.write('vda', 2 * MiB, CLUSTER, 0x77);
    await f.backup({ domain: f.domain.name });
    await f.domain.write('vda', 5 * MiB, CLUSTER, 0x78);
    const second = (await f.backup({ domain: f.domain.uuid })).result!;
    assert.equal(second.disks[0].record!.kind, 'incremental', 'the name and the UUID reach the same chain');
    const expected = await f.copyNow('vda', 'vda-now');

    const list = await runCtl(['backups', '--dir', f.store.dir, '--vm', f.domain.uuid]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.match(/incremental/g)?.length, 2, list.stdout);
    const verify = await runCtl(['verify', '--dir', f.store.dir]);
    assert.equal(verify.code, 0, verify.stderr + verify.stdout);
    const out = path.join(f.dir, 'restored.raw');
    const restore = await runCtl([
      'restore',
      '--dir',
      f.store.dir,
      '--vm',
      f.domain.uuid,
      '--disk',
      'vda',
      '--to',
      out,
      '--format',
      'raw',
    ]);
    assert.equal(restore.code, 0, restore.stderr);
    assert.ok(await sameContent(out, expected));
  });
});

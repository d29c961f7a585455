/**
 * The libvirt driver's checkpoints managed as the chain is, against real libvirt: a checkpoint or bitmap
 * that is gone (deleted behind our back, the domain destroyed and defined again) makes the next backup
 * full with the reason in its manifest, and a prune deletes the checkpoints of the backups it removes.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { virsh } from '../../helpers/libvirtd';
import { waitFor } from '../../helpers/wait';
import { runCtl } from '../ctl/ctl-process';
import { CLUSTER, MiB, useLibvirtFixture } from './libvirt-fixture';

const checkpoints = async (domain: string) =>
  (await virsh('checkpoint-list', domain, '--name')).split('\n').filter(Boolean);

describe('libvirt driver: checkpoints', function () {
  this.timeout(120_000);
  const f = useLibvirtFixture({ diskSizes: [4 * MiB, 4 * MiB], persistent: true });

  it('makes the next backup full, saying why in the manifest, when the checkpoint was deleted behind its back', async () => {
    const first = (await f.backup()).result!;
    await virsh('checkpoint-delete', f.domain.name, first.disks[0].record!.checkpoint!);
    await f.domain.write('vda', 0, CLUSTER, 0x42);
    const second = (await f.backup()).result!;
    for (const d of second.disks) {
      assert.equal(d.record!.kind, 'full');
      assert.match(
        d.record!.fullReason!,
        /^checkpoint headroom-\S+ is missing: it was deleted, or the domain was redefined/,
      );
      const manifest = JSON.parse(fs.readFileSync(f.store.pathOf(d.record!).replace(/\.qcow2$/, '.json'), 'utf8'));
      assert.equal(manifest.fullReason, d.record!.fullReason);
    }
    assert.equal((await f.backup()).result!.disks[0].record!.kind, 'incremental', 'the new chain goes on');
  });

  it('makes the next backup full when the domain was destroyed and defined again (its checkpoints gone with it)', async () => {
    await f.backup();
    // Defined again as it was (its UUID too), as from a saved `virsh dumpxml`.
    const saved = path.join(f.dir, 'saved.xml');
    fs.writeFileSync(saved, await virsh('dumpxml', '--inactive', f.domain.name));
    await virsh('destroy', f.domain.name);
    await virsh('undefine', f.domain.name, '--checkpoints-metadata');
    await virsh('define', saved);
    await virsh('start', f.domain.name);
    const again = (await f.backup()).result!;
    assert.deepEqual(
      again.disks.map((d) => [d.record!.kind, /checkpoint \S+ is missing/.test(d.record!.fullReason ?? '')]),
      [
        ['full', true],
        ['full', true],
      ],
    );
  });

  it("makes one disk's next backup full when its bitmap was removed behind libvirt's back, the other's incremental", async () => {
    const first = (await f.backup()).result!;
    const checkpoint = first.disks[0].record!.checkpoint!;
    const nodes = JSON.parse(await virsh('qemu-monitor-command', f.domain.name, '{"execute":"query-block"}'))
      .return as Array<{
      qdev: string;
      inserted?: { 'node-name': string };
    }>;
    const vdb = nodes.find((n) => n.qdev.includes('ua-vdb'))!.inserted!['node-name'];
    await virsh(
      'qemu-monitor-command',
      f.domain.name,
      JSON.stringify({ execute: 'block-dirty-bitmap-remove', arguments: { node: vdb, name: checkpoint } }),
    );
    const second = (await f.backup()).result!;
    assert.deepEqual(
      second.disks.map((d) => [d.disk, d.record!.kind]),
      [
        ['vda', 'incremental'],
        ['vdb', 'full'],
      ],
    );
    assert.match(second.disks[1].record!.fullReason!, new RegExp(`checkpoint ${checkpoint} has no usable bitmap`));
  });

  it('makes the next backup full after QEMU crashed, whether its bitmaps were never stored or stored and then in use', async () => {
    const crash = async () => {
      const pid = Number(fs.readFileSync(`/run/libvirt/qemu/${f.domain.name}.pid`, 'utf8'));
      process.kill(pid, 'SIGKILL');
      await waitFor(async () => /shut off/.test(await virsh('domstate', f.domain.name)), 30_000, 'QEMU gone');
      await virsh('start', f.domain.name);
    };
    const expectFull = async () => {
      for (const d of (await f.backup()).result!.disks) {
        assert.equal(d.record!.kind, 'full');
        assert.match(d.record!.fullReason!, /has no usable bitmap on this disk: .*QEMU stopped uncleanly \(a crash\)/);
      }
    };
    // Created while QEMU ran: the bitmaps exist only in its memory until it stops cleanly.
    await f.backup();
    await f.domain.write('vda', 0, CLUSTER, 0x24);
    await crash();
    await expectFull();
    // Stored by a clean stop, loaded (marked in use) at the start: after a crash QEMU finds them inconsistent.
    await virsh('destroy', f.domain.name);
    await virsh('start', f.domain.name);
    await crash();
    await expectFull();
  });

  it('deletes the checkpoints of the backups headroomctl prune removes, and keeps those kept backups name', async () => {
    const sets = [];
    for (let i = 0; i < 3; i++) {
      await f.domain.write('vda', i * MiB, CLUSTER, 0x10 + i);
      // The third starts a new chain, so that the first can go.
      sets.push((await f.backup({ forceFull: i === 2 })).result!.disks[0].record!.checkpoint!);
    }
    assert.deepEqual((await checkpoints(f.domain.name)).sort(), [...sets].sort());
    // Only vda's backups go: vdb's keep every checkpoint of their sets.
    const vdaOnly = await runCtl([
      'prune',
      '--dir',
      f.store.dir,
      '--vm',
      f.domain.uuid,
      '--disk',
      'vda',
      '--keep-last',
      '1',
    ]);
    assert.equal(vdaOnly.code, 0, vdaOnly.stderr);
    assert.equal((await checkpoints(f.domain.name)).length, 3);
    const all = await runCtl(['prune', '--dir', f.store.dir, '--vm', f.domain.uuid, '--keep-last', '1']);
    assert.equal(all.code, 0, all.stderr);
    assert.doesNotMatch(all.stderr, /could not delete/);
    assert.deepEqual(await checkpoints(f.domain.name), [sets[2]]);
    assert.equal((await f.backup()).result!.disks[0].record!.kind, 'incremental', 'the latest checkpoint still serves');
  });
});

describe('libvirt driver: checkpoints of a transient domain', function () {
  this.timeout(120_000);
  const f = useLibvirtFixture({ diskSizes: [4 * MiB] });

  it('makes the next backup full once the domain was destroyed and created again: its checkpoints went with it', async () => {
    await f.backup();
    const saved = path.join(f.dir, 'saved.xml');
    fs.writeFileSync(saved, await virsh('dumpxml', f.domain.name));
    await virsh('destroy', f.domain.name);
    await virsh('create', saved);
    const again = (await f.backup()).result!.disks[0].record!;
    assert.equal(again.kind, 'full');
    assert.match(again.fullReason!, /is missing: .*or it is transient and was restarted/);
  });
});

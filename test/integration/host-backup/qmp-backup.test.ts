/**
 * The qmp driver against a real qemu-storage-daemon: a full backup and two incrementals of a two-disk VM,
 * each incremental holding exactly the clusters written since the one before, every point restored by
 * qemu-img (and by `headroomctl restore`) to the bytes the disk held then.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupRecord } from '../../../host-backup/catalog/chain-rules';
import { restoreDisk } from '../../../host-backup/catalog/restore';
import { QemuImg } from '../../../host-backup/qemu-img';
import { spawnCtl } from '../ctl/ctl-process';
import { CLUSTER, MiB, backup, recordOf, useFixture } from './fixture';
import { imageBytes, ownClusters } from './storage-daemon';

describe('qmp driver against qemu-storage-daemon', function () {
  this.timeout(60_000);
  const f = useFixture();

  it('takes full + incremental + incremental of two disks in one transaction; each incremental holds exactly the written clusters, and every point restores byte-identical', async () => {
    const points: Array<{ records: Record<string, BackupRecord>; content: Record<string, Buffer> }> = [];
    const snapshot = async () => ({ disk0: await f.daemon.read('disk0'), disk1: await f.daemon.read('disk1') });

    await f.daemon.write('disk0', 0, CLUSTER, 0x11);
    await f.daemon.write('disk0', 1 * MiB, 2 * CLUSTER, 0x12);
    await f.daemon.write('disk1', CLUSTER, CLUSTER, 0x13);
    let content = await snapshot();
    const first = await backup(f);
    assert.ok(first.ok, first.message);
    for (const disk of ['disk0', 'disk1']) {
      const r = recordOf(first, disk);
      assert.equal(r.kind, 'full');
      assert.equal(r.fullReason, 'no previous backup of this disk in the catalog');
      assert.equal(r.setId, first.setId);
      assert.equal(r.consistency, 'crash');
    }
    assert.equal(recordOf(first, 'disk0').bytes, 8 * MiB, 'a full backup copies the whole disk');
    points.push({ records: { disk0: recordOf(first, 'disk0'), disk1: recordOf(first, 'disk1') }, content });

    await f.daemon.write('disk0', 2 * MiB, CLUSTER, 0x21);
    await f.daemon.write('disk0', 0, CLUSTER, 0x22); // overwrites a cluster the full backup holds
    content = await snapshot();
    const second = await backup(f);
    assert.ok(second.ok, second.message);
    const inc1 = recordOf(second, 'disk0');
    assert.equal(inc1.kind, 'incremental');
    assert.equal(inc1.parentId, recordOf(first, 'disk0').id);
    assert.equal(inc1.chainId, recordOf(first, 'disk0').id);
    assert.deepEqual(await ownClusters(f.store.pathOf(inc1)), [
      [0, CLUSTER],
      [2 * MiB, CLUSTER],
    ]);
    assert.equal(inc1.bytes, 2 * CLUSTER);
    const idle = recordOf(second, 'disk1');
    assert.equal(idle.kind, 'incremental');
    assert.deepEqual(await ownClusters(f.store.pathOf(idle)), [], 'nothing was written to disk1');
    assert.equal(idle.bytes, 0);
    points.push({ records: { disk0: inc1, disk1: idle }, content });

    await f.daemon.write('disk0', 5 * MiB, 3 * CLUSTER, 0x31);
    await f.daemon.write('disk1', 0, CLUSTER, 0x32);
    await f.daemon.write('disk1', 3 * MiB + 100, 10, 0x33); // a few bytes dirty their whole cluster
    content = await snapshot();
    const third = await backup(f);
    assert.ok(third.ok, third.message);
    const inc2 = recordOf(third, 'disk0');
    assert.equal(inc2.parentId, inc1.id);
    assert.deepEqual(await ownClusters(f.store.pathOf(inc2)), [[5 * MiB, 3 * CLUSTER]]);
    const inc2b = recordOf(third, 'disk1');
    assert.equal(inc2b.parentId, idle.id);
    assert.deepEqual(await ownClusters(f.store.pathOf(inc2b)), [
      [0, CLUSTER],
      [3 * MiB, CLUSTER],
    ]);
    points.push({ records: { disk0: inc2, disk1: inc2b }, content });

    // Every record's checksum is the file's, and the manifests read back as written.
    const all = f.store.records('vm1');
    assert.equal(all.length, 6);
    for (const r of all) assert.deepEqual(await f.store.verify(r), { ok: true, actual: r.sha256 });

    for (const [i, point] of points.entries()) {
      for (const disk of ['disk0', 'disk1']) {
        const at = point.records[disk].takenAtMs;
        const to = path.join(f.dir, `restore-${disk}-${i}.qcow2`);
        const restored = await restoreDisk({
          store: f.store,
          vm: 'vm1',
          disk,
          atMs: at,
          to,
          format: 'qcow2',
          verify: true,
        });
        assert.equal(restored.chain.length, i + 1);
        assert.ok(
          (await imageBytes(to, 'qcow2')).equals(point.content[disk]),
          `${disk} restored at point ${i} differs from the source then`,
        );
        assert.equal((await new QemuImg().backingChain(to)).length, 1, 'the restored image has no backing file');
      }
    }

    // headroomctl restore: f.store, as a person would run it: no coordinator needed, raw output, a time between two backups.
    const between = new Date(points[1].records.disk0.takenAtMs + 1).toISOString();
    const out = path.join(f.dir, 'ctl-ref.store.raw');
    const ctl = spawnCtl([
      'restore',
      '--dir',
      f.store.dir,
      '--vm',
      'vm1',
      '--disk',
      'disk0',
      '--at',
      between,
      '--to',
      out,
      '--format',
      'raw',
    ]);
    const res = await ctl.done;
    assert.equal(res.code, 0, res.stderr);
    assert.ok(fs.readFileSync(out).equals(points[1].content.disk0));
    assert.match(res.stdout, new RegExp(inc1.id));

    const listed = await spawnCtl(['backups', '--dir', f.store.dir, '--verify']).done;
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^TAKEN\s+VM\s+DISK\s+KIND\s+ID\s+COPIED\s+FILE\s+TOOK\s+CHAIN\s+SHA-256\s+WHY FULL$/);
    assert.equal(lines.length, 7);
    assert.match(
      lines.find((l) => l.includes(inc1.id)) ?? '',
      /vm1\s+disk0\s+incremental\s+\S+\s+128 KiB\s+[\d.]+ \w+\s+\S+\s+ok\s+ok\s*$/,
    );

    // A restore refuses a chain whose file changed (same size, one byte flipped), and writes nothing.
    const fd = fs.openSync(f.store.pathOf(inc1), 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, 300_000);
    fs.writeSync(fd, Buffer.from([byte[0] ^ 0xff]), 0, 1, 300_000);
    fs.closeSync(fd);
    const corrupt = path.join(f.dir, 'corrupt.qcow2');
    const refused = await spawnCtl(['restore', '--dir', f.store.dir, '--vm', 'vm1', '--disk', 'disk0', '--to', corrupt])
      .done;
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(`restore failed: backup ${inc1.id}: SHA-256 is [0-9a-f]{64}, the manifest says ${inc1.sha256}`),
    );
    assert.equal(fs.existsSync(corrupt), false);
    const verified = await spawnCtl(['backups', '--dir', f.store.dir, '--vm', 'vm1', '--verify']).done;
    assert.equal(verified.code, 1);
    assert.match(verified.stdout.split('\n').find((l) => l.includes(inc1.id)) ?? '', /\sok\s+MISMATCH\s*$/);
    assert.match(verified.stderr, /1 file\(s\) do not match their manifest's SHA-256/);
    const early = await spawnCtl([
      'restore',
      '--dir',
      f.store.dir,
      '--vm',
      'vm1',
      '--disk',
      'disk1',
      '--at',
      '2000-01-01T00:00:00Z',
      '--to',
      corrupt,
    ]).done;
    assert.equal(early.code, 1);
    assert.match(early.stderr, /no backup taken at or before 2000-01-01T00:00:00.000Z; the first is from /);
    const twoDisks = await spawnCtl(['restore', '--dir', f.store.dir, '--vm', 'vm1', '--to', corrupt]).done;
    assert.match(twoDisks.stderr, /VM vm1 has 2 disks \(disk0, disk1\): choose one with --disk/);
    const badTime = await spawnCtl([
      'restore',
      '--dir',
      f.store.dir,
      '--vm',
      'vm1',
      '--at',
      'yesterday',
      '--to',
      corrupt,
    ]).done;
    assert.equal(badTime.code, 64);
    assert.match(badTime.stderr, /--at: expected "now" or an ISO 8601 time with its zone/);
  });

  it('prunes whole chains a retention policy does not keep; what is kept still restores, and the next backup is incremental', async () => {
    const disks = [{ name: 'disk0', node: 'disk0' }];
    await f.daemon.write('disk0', 0, CLUSTER, 0x91);
    const oldFull = recordOf(await backup(f, { disks }), 'disk0');
    await f.daemon.write('disk0', MiB, CLUSTER, 0x92);
    const oldInc = recordOf(await backup(f, { disks }), 'disk0');
    const newFull = recordOf(await backup(f, { disks, forceFull: true }), 'disk0');
    assert.equal(newFull.fullReason, 'a full backup was asked for');
    await f.daemon.write('disk0', 2 * MiB, CLUSTER, 0x93);
    const newInc = recordOf(await backup(f, { disks }), 'disk0');
    const content = await f.daemon.read('disk0');

    const dry = await spawnCtl(['prune', '--dir', f.store.dir, '--keep-last', '1', '--dry-run']).done;
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^keep {10}vm1/disk0  ${newFull.id}  \\(base of ${newInc.id}\\)$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^would remove  vm1/disk0  ${oldInc.id}$`, 'm'));
    assert.equal(f.store.records('vm1').length, 4, 'a dry run removes nothing');

    const pruned = await spawnCtl(['prune', '--dir', f.store.dir, '--keep-last', '1']).done;
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(
      f.store
        .records('vm1')
        .map((r) => r.id)
        .sort(),
      [newFull.id, newInc.id].sort(),
    );
    assert.equal(fs.existsSync(f.store.pathOf(oldFull)), false);
    assert.equal(fs.existsSync(f.store.pathOf(oldInc)), false);
    const to = path.join(f.dir, 'after-prune.qcow2');
    await restoreDisk({
      store: f.store,
      vm: 'vm1',
      disk: 'disk0',
      atMs: Number.MAX_SAFE_INTEGER,
      to,
      format: 'qcow2',
      verify: true,
    });
    assert.ok((await imageBytes(to, 'qcow2')).equals(content));
    assert.equal(recordOf(await backup(f, { disks }), 'disk0').kind, 'incremental');
  });
});

/**
 * The qmp driver keeps its chains honest against a real qemu-storage-daemon: a bitmap that is gone or
 * cannot be trusted makes the next backup full and says why in the catalog; a bitmap survives a clean
 * restart; a job that fails or is cancelled leaves every disk's bitmap holding its bits, so the retry
 * copies everything written since the last good backup.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { waitFor } from '../../helpers/wait';
import { spawnCtl } from '../ctl/ctl-process';
import { CLUSTER, type Fixture, MiB, backup, recordOf, useFixture } from './fixture';
import { ownClusters } from './storage-daemon';

/** What QEMU says of the catalog's bitmap on each disk. */
async function bitmaps(f: Fixture): Promise<Record<string, { count: number; inconsistent?: boolean } | undefined>> {
  const client = await f.daemon.connect();
  try {
    const nodes = await client.execute<
      Array<{ 'node-name': string; 'dirty-bitmaps'?: Array<{ name: string; count: number; inconsistent?: boolean }> }>
    >('query-named-block-nodes', { flat: true });
    const of = (disk: string) =>
      nodes.find((n) => n['node-name'] === disk)?.['dirty-bitmaps']?.find((b) => b.name === f.store.bitmapName);
    return { disk0: of('disk0'), disk1: of('disk1') };
  } finally {
    client.close();
  }
}

describe('qmp driver: chain honesty against qemu-storage-daemon', function () {
  this.timeout(60_000);
  const f = useFixture();

  it('makes the next backup of a disk whose bitmap was removed a full one, with the reason in its manifest, and the other disk incremental', async () => {
    assert.ok((await backup(f)).ok);
    await f.daemon.write('disk0', 0, CLUSTER, 0x41);
    await f.daemon.write('disk1', MiB, CLUSTER, 0x42);
    const client = await f.daemon.connect();
    await client.execute('block-dirty-bitmap-remove', { node: 'disk0', name: f.store.bitmapName });
    client.close();

    const second = await backup(f);
    assert.ok(second.ok, second.message);
    const full = recordOf(second, 'disk0');
    assert.equal(full.kind, 'full');
    assert.equal(
      full.fullReason,
      `dirty bitmap ${f.store.bitmapName} is missing: it was removed, or the disk was replaced (e.g. restored)`,
    );
    const [manifest] = f.store.records('vm1', 'disk0').filter((r) => r.id === full.id);
    assert.equal(manifest.fullReason, full.fullReason, 'the reason is in the catalog');
    assert.equal(manifest.fullReasonCode, 'bitmap-missing', 'and its code, which the chain-break metric reads');
    assert.deepEqual(await ownClusters(f.store.pathOf(recordOf(second, 'disk1'))), [[MiB, CLUSTER]]);

    // The new full backup started a bitmap again: the next one is incremental, with exactly the new write.
    await f.daemon.write('disk0', 3 * MiB, CLUSTER, 0x43);
    const third = await backup(f);
    const inc = recordOf(third, 'disk0');
    assert.equal(inc.parentId, full.id);
    assert.deepEqual(await ownClusters(f.store.pathOf(inc)), [[3 * MiB, CLUSTER]]);
  });

  it('keeps the bitmap across a clean restart; after an unclean one it is inconsistent and the next backup is full, saying so', async () => {
    assert.ok((await backup(f)).ok);
    await f.daemon.write('disk0', 2 * MiB, 2 * CLUSTER, 0x51);
    await f.daemon.stop();
    await f.daemon.start();
    const afterClean = await backup(f);
    const inc = recordOf(afterClean, 'disk0');
    assert.equal(inc.kind, 'incremental', 'the persistent bitmap was stored in the image at the clean stop');
    assert.deepEqual(await ownClusters(f.store.pathOf(inc)), [[2 * MiB, 2 * CLUSTER]]);

    await f.daemon.write('disk0', 4 * MiB, CLUSTER, 0x52);
    await f.daemon.kill();
    await f.daemon.start();
    assert.equal(
      (await bitmaps(f)).disk0?.inconsistent,
      true,
      'QEMU loads a bitmap that was in use at an unclean stop as inconsistent',
    );
    const afterCrash = await backup(f);
    assert.ok(afterCrash.ok, afterCrash.message);
    for (const disk of ['disk0', 'disk1']) {
      const r = recordOf(afterCrash, disk);
      assert.equal(r.kind, 'full');
      assert.match(r.fullReason ?? '', /is inconsistent: QEMU stopped uncleanly while it was in use/);
    }
    const replaced = (await bitmaps(f)).disk0;
    assert.ok(
      replaced && replaced.inconsistent !== true,
      'the untrusted bitmap was replaced (QEMU omits "inconsistent" when false)',
    );
    await f.daemon.write('disk0', 6 * MiB, CLUSTER, 0x53);
    const next = recordOf(await backup(f), 'disk0');
    assert.equal(next.kind, 'incremental');
    assert.deepEqual(await ownClusters(f.store.pathOf(next)), [[6 * MiB, CLUSTER]]);
  });

  it("when one disk's job fails (target out of space), cancels the other (grouped) and keeps both bitmaps: the retry holds every write since the last good backup", async () => {
    assert.ok((await backup(f)).ok);
    await f.daemon.write('disk0', 0, 2 * CLUSTER, 0x61);
    await f.daemon.write('disk1', 0, 16 * CLUSTER, 0x62);

    // disk1's backups move onto a tmpfs with room for what is there plus 512 KiB: its 1 MiB increment cannot fit.
    const disk1Dir = path.join(f.store.dir, 'vm1', 'disk1');
    const aside = `${disk1Dir}.aside`;
    fs.renameSync(disk1Dir, aside);
    fs.mkdirSync(disk1Dir);
    const used = fs.readdirSync(aside).reduce((n, name) => n + fs.statSync(path.join(aside, name)).size, 0);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${used + 512 * 1024}`, 'tmpfs', disk1Dir], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(
        `this test mounts a small tmpfs to fill up for real and needs root with CAP_SYS_ADMIN: ${(err as Error).message}`,
      );
    }
    let failed;
    try {
      for (const name of fs.readdirSync(aside)) fs.copyFileSync(path.join(aside, name), path.join(disk1Dir, name));
      failed = await backup(f);
      assert.deepEqual(fs.readdirSync(disk1Dir).sort(), fs.readdirSync(aside).sort(), 'the failed target was removed');
    } finally {
      execFileSync('umount', [disk1Dir]);
    }
    fs.rmdirSync(disk1Dir);
    fs.renameSync(aside, disk1Dir);

    assert.equal(failed.ok, false);
    assert.match(failed.disks.find((d) => d.disk === 'disk1')?.error ?? '', /job failed: No space left on device/);
    assert.equal(failed.disks.find((d) => d.disk === 'disk0')?.error, 'job cancelled');
    assert.equal(f.store.records('vm1').length, 2, 'nothing was recorded for the failed set');
    const kept = await bitmaps(f);
    assert.equal(kept.disk0?.count, 2 * CLUSTER);
    assert.equal(kept.disk1?.count, 16 * CLUSTER);

    await f.daemon.write('disk0', 7 * MiB, CLUSTER, 0x63);
    const retry = await backup(f);
    assert.ok(retry.ok, retry.message);
    assert.deepEqual(await ownClusters(f.store.pathOf(recordOf(retry, 'disk0'))), [
      [0, 2 * CLUSTER],
      [7 * MiB, CLUSTER],
    ]);
    assert.deepEqual(await ownClusters(f.store.pathOf(recordOf(retry, 'disk1'))), [[0, 16 * CLUSTER]]);
  });

  it('reports progress, and a cancelled backup (lease lost, Ctrl-C) keeps the bitmap for the retry', async () => {
    assert.ok((await backup(f)).ok);
    await f.daemon.write('disk0', 0, 4 * MiB, 0x71);
    const abort = new AbortController();
    const seen: Array<{ disk: string; offset: number; len: number }> = [];
    const cancelled = await backup(f, {
      speed: 512 * 1024, // slow enough to be caught running
      signal: abort.signal,
      onProgress: (p) => {
        seen.push(...p);
        abort.abort();
      },
    });
    assert.equal(cancelled.ok, false);
    assert.deepEqual(
      cancelled.disks.map((d) => d.error),
      ['job cancelled', 'job cancelled'],
    );
    const progress = seen.find((p) => p.disk === 'disk0');
    assert.ok(progress, 'progress was reported for disk0');
    assert.equal(progress.len, 4 * MiB, "the job's length is the dirty data");
    assert.ok(progress.offset < progress.len, 'it was caught before the end');
    assert.equal((await bitmaps(f)).disk0?.count, 4 * MiB);

    const retry = await backup(f);
    assert.ok(retry.ok, retry.message);
    assert.deepEqual(await ownClusters(f.store.pathOf(recordOf(retry, 'disk0'))), [[0, 4 * MiB]]);
  });

  it('when the backup process dies mid-job, QEMU finishes the job unseen and clears the bitmap: the next backup is full, saying why', async () => {
    assert.ok((await backup(f, { disks: [{ name: 'disk0', node: 'disk0' }] })).ok);
    await f.daemon.write('disk0', 0, 2 * MiB, 0x81);
    const ctl = spawnCtl([
      'qmp-backup',
      '--qmp-socket',
      f.daemon.qmpSocket,
      '--vm',
      'vm1',
      '--target',
      f.store.dir,
      '--disk',
      'disk0',
      '--speed',
      '128K',
    ]);
    await ctl.waitFor('stderr', /disk0 [\d.]+ \w+ of 2\.0 MiB/);
    ctl.process.kill('SIGKILL');
    await ctl.done;

    const client = await f.daemon.connect();
    try {
      // The orphaned job runs on in QEMU; lift its speed limit so that it ends soon.
      for (const job of await client.execute<Array<{ device: string }>>('query-block-jobs')) {
        await client.execute('block-job-set-speed', { device: job.device, speed: 0 });
      }
      await waitFor(
        async () => (await client.execute<unknown[]>('query-block-jobs')).length === 0,
        20_000,
        'the orphaned job to end',
      );
    } finally {
      client.close();
    }
    assert.equal((await bitmaps(f)).disk0?.count, 0, 'QEMU cleared the bitmap for a backup nobody recorded');
    assert.equal(f.store.records('vm1', 'disk0').length, 1);
    assert.equal(f.store.interrupted('vm1', 'disk0').length, 1);
    const listed = await spawnCtl(['backups', '--dir', f.store.dir]).done;
    assert.match(
      listed.stdout,
      /^interrupted: vm1\/disk0 backup \S+-inc-\S+ \(its end was not seen; the next backup of the disk will be full\)$/m,
    );

    const next = await backup(f, { disks: [{ name: 'disk0', node: 'disk0' }] });
    const r = recordOf(next, 'disk0');
    assert.equal(r.kind, 'full');
    assert.match(
      r.fullReason ?? '',
      /^backup \S+ was interrupted before its end was known: QEMU may have cleared the bitmap with nothing recorded$/,
    );
    assert.deepEqual(f.store.interrupted('vm1', 'disk0'), []);
    const after = await f.daemon.connect();
    try {
      const nodes = await after.execute<Array<{ 'node-name': string }>>('query-named-block-nodes', { flat: true });
      assert.deepEqual(
        nodes.filter((n) => n['node-name'].startsWith('headroom-target-')),
        [],
        "the dead process's target was detached",
      );
    } finally {
      after.close();
    }
  });
});

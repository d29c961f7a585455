/**
 * `headroomctl host-backup --driver qmp` end to end: a real coordinator grants the HYPERVISOR token, the
 * qmp driver backs a real qemu-storage-daemon up under it, and a revoked token cancels the block jobs with
 * the bitmaps kept for the next run.
 */
import { strict as assert } from 'node:assert';
import { coordinatorPerTest, runCtl, spawnCtl } from '../ctl/ctl-process';
import { CLUSTER, MiB, qmpHostBackupArgs, useFixture } from './fixture';
import { ownClusters } from './storage-daemon';

describe('headroomctl host-backup --driver qmp', function () {
  this.timeout(60_000);
  const f = useFixture();
  const suite = coordinatorPerTest({ host: 'host-a' });
  const hostBackup = (...extra: string[]) =>
    qmpHostBackupArgs(suite.coordinator.address, f.daemon.qmpSocket, f.store.dir, ...extra);

  it('backs up every disk the daemon exports under a HYPERVISOR token: full, then incremental', async () => {
    await f.daemon.write('disk0', 0, CLUSTER, 0x11);
    const first = await runCtl(hostBackup());
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /granted token \S+ \(fencing 1\) on host-a/);
    assert.match(first.stdout, /^disk0 +full .*\(no previous backup of this disk in the catalog\)$/m);
    assert.match(first.stdout, /^disk1 +full /m);

    await f.daemon.write('disk1', 2 * MiB, CLUSTER, 0x22);
    const second = await runCtl(hostBackup());
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^disk1 +incremental +64\.0 KiB copied/m);
    assert.match(second.stdout, /^disk0 +incremental +0 B copied/m);
    const inc = f.store.records('vm1', 'disk1').find((r) => r.kind === 'incremental');
    assert.ok(inc);
    assert.deepEqual(await ownClusters(f.store.pathOf(inc)), [[2 * MiB, CLUSTER]]);

    const history = JSON.parse(
      (await runCtl(['--coordinator', suite.coordinator.address, 'history', '--json'])).stdout,
    ).events;
    const kinds = history
      .filter((e: { type: string }) => e.type !== 'HISTORY_EVENT_TYPE_POLICY_CHANGED')
      .map((e: { type: string; kind: string }) => `${e.type} ${e.kind}`);
    const cycle = [
      'HISTORY_EVENT_TYPE_GRANTED TOKEN_KIND_HYPERVISOR',
      'HISTORY_EVENT_TYPE_RELEASED TOKEN_KIND_HYPERVISOR',
    ];
    assert.deepEqual(kinds, [...cycle, ...cycle]);
    // QEMU wrote the copies, not host-backup's process tree: qmp-backup reports what it copied.
    const released = history.filter((e: { type: string }) => e.type === 'HISTORY_EVENT_TYPE_RELEASED');
    assert.match(released[1].detail, /^success, exit 0, 64\.0 KiB written, /);
  });

  it('cancels the jobs when the token is revoked, exits 75, records nothing, and keeps the bitmap for the next run', async () => {
    assert.equal((await runCtl(hostBackup('--disk', 'disk0'))).code, 0);
    await f.daemon.write('disk0', 0, 4 * MiB, 0x33);
    const hb = spawnCtl(hostBackup('--disk', 'disk0', '--speed', '256K'));
    const granted = await hb.waitFor('stderr', /granted token (\S+)/);
    // Progress means the job runs (the QMP socket serves one client at a time: the test stays off it until then).
    await hb.waitFor('stderr', /disk0 [\d.]+ \w+ of 4\.0 MiB/);
    const revoked = await runCtl([
      '--coordinator',
      suite.coordinator.address,
      'revoke',
      granted[1],
      '--reason',
      'host maintenance',
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const r = await hb.done;
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /SIGTERM: cancelling the backup jobs/);
    assert.match(r.stdout, /^disk0 +failed: job cancelled$/m);
    const client = await f.daemon.connect();
    try {
      assert.deepEqual(await client.execute('query-block-jobs'), []);
      const nodes = await client.execute<
        Array<{ 'node-name': string; 'dirty-bitmaps'?: Array<{ name: string; count: number }> }>
      >('query-named-block-nodes', { flat: true });
      const bitmap = nodes
        .find((n) => n['node-name'] === 'disk0')
        ?.['dirty-bitmaps']?.find((b) => b.name === f.store.bitmapName);
      assert.equal(bitmap?.count, 4 * MiB, 'the bitmap kept every dirty cluster');
    } finally {
      client.close();
    }
    assert.equal(f.store.records('vm1').length, 1, 'only the first full backup is in the catalog');

    const retry = await runCtl(hostBackup('--disk', 'disk0'));
    assert.equal(retry.code, 0, retry.stderr);
    const inc = f.store.records('vm1', 'disk0').find((r) => r.kind === 'incremental');
    assert.ok(inc);
    assert.deepEqual(await ownClusters(f.store.pathOf(inc)), [[0, 4 * MiB]]);
  });

  it('refuses a command line with --driver qmp, and qmp options without it', async () => {
    const withCommand = await runCtl(hostBackup('--', 'true'));
    assert.equal(withCommand.code, 64);
    assert.match(withCommand.stderr, /--driver qmp runs the backup itself: give no command after "--"/);
    const stray = await runCtl([
      '--coordinator',
      suite.coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm1',
      '--target',
      '/tmp/x',
      '--',
      'true',
    ]);
    assert.equal(stray.code, 64);
    assert.match(stray.stderr, /--target needs --driver qmp/);
  });
});

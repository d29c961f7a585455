/**
 * Off-host snapshot management end to end: a real coordinator process whose coordinator.yaml names a
 * backup directory filled by the real qmp driver against qemu-storage-daemon, admin calls from a client
 * over TCP on 127.0.0.1, and headroomctl --coordinator for the same through the wire: list, inspect,
 * verify (a corrupted file caught), prune (dry run, then real), bad input refused naming the field, a
 * broken manifest reported rather than fatal, and backups the coordinator runs itself — started, listed,
 * cancelled with the bitmap kept so that the next run is incremental.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, unary } from '../../../common/client/connection';
import type { BackupRun__Output } from '../../../proto/generated/headroom/v1';
import {
  type RunningCoordinator,
  startCoordinator,
  tempDir,
  TEST_START_POLICY,
} from '../../helpers/coordinator-process';
import { verifyAll } from '../../helpers/admin-client';
import { waitFor } from '../../helpers/wait';
import { killAll, runCtl, testClients } from '../ctl/ctl-process';
import { CLUSTER, MiB, backup, recordOf, useFixture } from './fixture';

function rpcError(err: unknown): { code: number; details: string } {
  const e = err as grpc.ServiceError;
  return { code: e.code, details: e.details };
}

async function refused(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return rpcError(err);
  }
  assert.fail('expected the call to be refused');
}

describe('off-host snapshot management (AdminService snapshot calls, headroomctl --coordinator)', function () {
  this.timeout(90_000);
  const f = useFixture();
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const admin = <M extends keyof Clients['admin']>(method: M, req: object) =>
    unary(
      (clients.admin[method] as (...a: unknown[]) => grpc.ClientUnaryCall).bind(clients.admin) as never,
      req,
    ) as Promise<never>;
  const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args]);

  beforeEach(async () => {
    // {vm} in the QMP socket path: each VM's socket is a link to the one daemon.
    fs.symlinkSync(f.daemon.qmpSocket, path.join(f.dir, 'vm1.qmp'));
    fs.symlinkSync(f.daemon.qmpSocket, path.join(f.dir, 'vm2.qmp'));
    const config = path.join(f.dir, 'coordinator.yaml');
    const job = (name: string, vm: string, extra: string) =>
      `  - name: ${name}\n    vms: [${vm}]\n    schedule: "0 3 * * *"\n    window: 1h\n    expectedDuration: 1m\n    driver: qmp\n    qmpSocket: ${f.dir}/{vm}.qmp\n${extra}`;
    fs.writeFileSync(
      config,
      `${TEST_START_POLICY}backups:\n  dir: ${f.store.dir}\nhypervisorJobs:\n${job('nightly', 'vm1', '')}${job('slow', 'vm2', '    disks: disk0\n    speed: 256K\n')}`,
    );
    coordinator = await startCoordinator({ host: 'host-a', args: ['--config', config] });
    clients = testClients(coordinator.address);
  });

  afterEach(async () => {
    await killAll();
    clients.close();
    await coordinator.kill();
  });

  it('lists, inspects and filters the chains over TCP, and ctl prints the same from the coordinator as from --dir', async () => {
    assert.match(coordinator.address, /^127\.0\.0\.1:\d+$/);
    await f.daemon.write('disk0', 0, CLUSTER, 0x11);
    const full = await backup(f);
    await f.daemon.write('disk0', MiB, CLUSTER, 0x12);
    const inc = recordOf(await backup(f), 'disk0');
    const list = (await admin('ListBackups', {})) as {
      dir: string;
      backups: Array<Record<string, unknown>>;
      problems: unknown[];
    };
    assert.equal(list.dir, f.store.dir);
    assert.equal(list.backups.length, 4);
    assert.deepEqual(list.problems, []);
    const wireInc = list.backups.find((b) => b.id === inc.id)!;
    assert.equal(wireInc.kind, 'BACKUP_KIND_INCREMENTAL');
    assert.equal(wireInc.parentId, recordOf(full, 'disk0').id);
    assert.equal(wireInc.chainId, recordOf(full, 'disk0').id);
    assert.equal(wireInc.bytes, CLUSTER);
    assert.equal(wireInc.consistency, 'CONSISTENCY_CRASH');
    assert.equal(wireInc.sha256, inc.sha256);
    assert.equal(wireInc.path, f.store.pathOf(inc));
    assert.equal(wireInc.chainProblem, '');
    const wireFull = list.backups.find((b) => b.id === recordOf(full, 'disk0').id)!;
    assert.equal(wireFull.kind, 'BACKUP_KIND_FULL');
    assert.equal(wireFull.fullReason, 'no previous backup of this disk in the catalog');

    const disk1 = (await admin('ListBackups', { vm: 'vm1', disk: 'disk1' })) as { backups: Array<{ disk: string }> };
    assert.deepEqual(
      disk1.backups.map((b) => b.disk),
      ['disk1', 'disk1'],
    );
    assert.equal(((await admin('ListBackups', { vm: 'other' })) as { backups: unknown[] }).backups.length, 0);
    const newest = (await admin('ListBackups', { limit: 1 })) as {
      backups: Array<{ id: string; takenUnixMs: number }>;
      omitted: number;
    };
    assert.equal(newest.omitted, 3);
    assert.equal(newest.backups.length, 1);
    assert.equal(newest.backups[0].id, list.backups[3].id, 'the newest of the full list');

    const shown = (await admin('GetBackup', { id: inc.id })) as {
      backup: { id: string };
      chain: Array<{ id: string }>;
      manifestJson: string;
    };
    assert.equal(shown.backup.id, inc.id);
    assert.deepEqual(
      shown.chain.map((c) => c.id),
      [recordOf(full, 'disk0').id, inc.id],
    );
    assert.equal(JSON.parse(shown.manifestJson).sha256, inc.sha256);

    const remote = await ctl('backups', '--vm', 'vm1');
    const local = await runCtl(['backups', '--dir', f.store.dir, '--vm', 'vm1']);
    assert.equal(remote.code, 0, remote.stderr);
    assert.match(
      remote.stdout,
      new RegExp(`vm1\\s+disk0\\s+incremental\\s+${inc.id}\\s+64\\.0 KiB\\s+.*\\sok\\s*$`, 'm'),
    );
    assert.equal(remote.stdout, local.stdout, 'the same table from the coordinator as from the directory');
    const remoteJson = JSON.parse((await ctl('--json', 'backups')).stdout);
    const localJson = JSON.parse((await runCtl(['--json', 'backups', '--dir', f.store.dir])).stdout);
    assert.deepEqual(remoteJson, localJson);

    const show = await ctl('backup', 'show', inc.id);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^  parent       ${recordOf(full, 'disk0').id}$`, 'm'));
    assert.match(show.stdout, /^chain \(2, oldest first; /m);
    const missing = await ctl('backup', 'show', 'no-such-backup');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND.*no backup no-such-backup in the catalog/);
  });

  it('refuses bad input with INVALID_ARGUMENT naming the field', async () => {
    const cases: Array<[string, object, RegExp]> = [
      ['ListBackups', { disk: 'disk0' }, /^disk: needs vm/],
      ['ListBackups', { vm: '../etc' }, /^vm: /],
      ['ListBackups', { vm: 'vm1', disk: 'a:b' }, /^disk: /],
      ['ListBackups', { limit: 501 }, /^limit: must be an integer from 1 to 500/],
      ['GetBackup', { id: '' }, /^id: is required/],
      ['GetBackup', { id: 'x/../../y' }, /^id: /],
      ['PruneBackups', { vm: 'vm1' }, /^keep_last: give at least one of keep_last, keep_daily, keep_weekly/],
      ['StartBackup', { vm: '' }, /^vm: is required/],
      ['CancelBackup', { vm: 'bad name' }, /^vm: /],
    ];
    for (const [method, req, details] of cases) {
      const e = await refused(admin(method as keyof Clients['admin'], req));
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT, `${method} ${JSON.stringify(req)}: ${e.details}`);
      assert.match(e.details, details);
    }
    const stream = await refused(verifyAll(clients, { vm: 'vm1', disk: 'x y' }));
    assert.equal(stream.code, grpc.status.INVALID_ARGUMENT);
    assert.match(stream.details, /^disk: /);
    const noDriver = await refused(admin('StartBackup', { vm: 'vm9' }));
    assert.equal(noDriver.code, grpc.status.FAILED_PRECONDITION);
    assert.match(noDriver.details, /no hypervisorJobs entry with a driver lists VM vm9/);
    const notRunning = await refused(admin('CancelBackup', { vm: 'vm1' }));
    assert.equal(notRunning.code, grpc.status.NOT_FOUND);
  });

  it('verifies checksums file by file, catching a corrupted file, and reports a broken manifest without failing the rest', async () => {
    await f.daemon.write('disk0', 0, CLUSTER, 0x21);
    await backup(f);
    await f.daemon.write('disk1', 0, 2 * CLUSTER, 0x22);
    const inc = recordOf(await backup(f), 'disk1');

    const clean = await verifyAll(clients, {});
    assert.equal(clean.length, 4);
    assert.ok(clean.every((v) => v.ok && v.actualSha256.length === 64 && v.total === 4));
    assert.deepEqual(
      clean.map((v) => v.index),
      [1, 2, 3, 4],
    );
    const ok = await ctl('verify', '--vm', 'vm1');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /4 file\(s\) match their manifests \(the coordinator at 127\.0\.0\.1:\d+\)/);

    // Same size, one byte flipped: only a checksum sees it.
    const fd = fs.openSync(f.store.pathOf(inc), 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, 200_000);
    fs.writeSync(fd, Buffer.from([byte[0] ^ 0xff]), 0, 1, 200_000);
    fs.closeSync(fd);
    const one = await verifyAll(clients, { vm: 'vm1', disk: 'disk1', id: inc.id });
    assert.equal(one.length, 1);
    assert.equal(one[0].ok, false);
    assert.match(one[0].problem, new RegExp(`^SHA-256 is [0-9a-f]{64}, the manifest says ${inc.sha256}$`));
    const bad = await ctl('verify');
    assert.equal(bad.code, 1, 'a bad file makes verify fail');
    assert.match(bad.stdout, new RegExp(`^BAD  vm1/disk1  ${inc.id}  SHA-256 is `, 'm'));
    assert.equal(bad.stdout.split('\n').filter((l) => l.startsWith('ok ')).length, 3);
    const listed = await ctl('backups', '--verify');
    assert.equal(listed.code, 1);
    assert.match(listed.stdout.split('\n').find((l) => l.includes(inc.id)) ?? '', /\sok\s+MISMATCH\s*$/);

    // A manifest that is not JSON: reported, the other backups still listed and checked.
    const broken = path.join(f.store.dir, 'vm1', 'disk0', 'broken.json');
    fs.writeFileSync(broken, '{ not json');
    const list = (await admin('ListBackups', {})) as {
      backups: unknown[];
      problems: Array<{ file: string; problem: string }>;
    };
    assert.equal(list.backups.length, 4);
    assert.equal(list.problems.length, 1);
    assert.equal(list.problems[0].file, broken);
    assert.match(list.problems[0].problem, /broken\.json: not JSON/);
    const withBroken = await verifyAll(clients, {});
    assert.equal(withBroken.length, 5);
    assert.equal(withBroken.filter((v) => !v.ok).length, 2);
    const ctlList = await ctl('backups');
    assert.equal(ctlList.code, 1);
    assert.match(ctlList.stderr, /unreadable manifest: .*broken\.json: not JSON/);
    const after = await admin('ListHosts', {});
    assert.ok(after, 'the coordinator still serves');
  });

  it('prunes by retention: a dry run removes nothing, the real one removes whole chains no kept backup needs; a broken disk is left alone', async () => {
    const disks = [{ name: 'disk0', node: 'disk0' }];
    await f.daemon.write('disk0', 0, CLUSTER, 0x31);
    const oldFull = recordOf(await backup(f, { disks }), 'disk0');
    await f.daemon.write('disk0', MiB, CLUSTER, 0x32);
    const oldInc = recordOf(await backup(f, { disks }), 'disk0');
    const newFull = recordOf(await backup(f, { disks, forceFull: true }), 'disk0');
    await f.daemon.write('disk0', 2 * MiB, CLUSTER, 0x33);
    const newInc = recordOf(await backup(f, { disks }), 'disk0');

    const dry = (await admin('PruneBackups', { keepLast: 1, dryRun: true })) as {
      dryRun: boolean;
      freedBytes: number;
      decisions: Array<{ id: string; keep: boolean; why: string[] }>;
    };
    assert.equal(dry.dryRun, true);
    assert.deepEqual(
      dry.decisions.filter((d) => d.keep).map((d) => d.id),
      [newFull.id, newInc.id],
    );
    assert.deepEqual(dry.decisions.find((d) => d.id === newFull.id)!.why, [`base of ${newInc.id}`]);
    assert.deepEqual(
      dry.decisions.filter((d) => !d.keep).map((d) => d.id),
      [oldInc.id, oldFull.id],
    );
    assert.equal(dry.freedBytes, oldFull.fileBytes + oldInc.fileBytes);
    assert.equal(f.store.records('vm1').length, 4, 'a dry run removes nothing');

    const ctlDry = await ctl('prune', '--keep-last', '1', '--dry-run');
    assert.equal(ctlDry.code, 0, ctlDry.stderr);
    assert.match(ctlDry.stdout, new RegExp(`^would remove  vm1/disk0  ${oldInc.id}$`, 'm'));
    assert.equal(f.store.records('vm1').length, 4);

    const real = await ctl('prune', '--keep-last', '1');
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, new RegExp(`^removed {7}vm1/disk0  ${oldFull.id}$`, 'm'));
    assert.deepEqual(
      f.store
        .records('vm1')
        .map((r) => r.id)
        .sort(),
      [newFull.id, newInc.id].sort(),
    );
    assert.equal(fs.existsSync(f.store.pathOf(oldFull)), false);
    assert.equal(recordOf(await backup(f, { disks }), 'disk0').kind, 'incremental', 'the kept chain goes on');

    fs.writeFileSync(path.join(f.store.dir, 'vm1', 'disk0', 'broken.json'), '[]');
    const leftAlone = await ctl('--json', 'prune', '--keep-last', '1');
    assert.equal(leftAlone.code, 1);
    const res = JSON.parse(leftAlone.stdout);
    assert.deepEqual(res.decisions, []);
    assert.match(res.problems[0].problem, /broken\.json: /);
    assert.equal(
      f.store.scan('vm1', 'disk0').records.length,
      3,
      'nothing removed on a disk whose chains cannot all be read',
    );
  });

  it('starts a backup as a child of the coordinator (full, then incremental) that shows in the list', async () => {
    await f.daemon.write('disk0', 0, CLUSTER, 0x41);
    const first = await ctl('backup', 'start', '--vm', 'vm1', '--wait');
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /^vm1  succeeded  run \S+  job nightly  ended .*: done$/m);
    await f.daemon.write('disk1', MiB, CLUSTER, 0x42);
    const second = await ctl('--json', 'backup', 'start', '--vm', 'vm1', '--wait');
    assert.equal(second.code, 0, second.stderr);
    const run = JSON.parse(second.stdout) as BackupRun__Output;
    assert.equal(run.state, 'BACKUP_RUN_STATE_SUCCEEDED');
    assert.ok(run.argv.includes('host-backup') && run.argv.includes(path.join(f.dir, 'vm1.qmp')), run.argv.join(' '));
    assert.match(run.outputTail, /granted token \S+ \(fencing \d+\) on host-a/);

    const listed = await ctl('--json', 'backups', '--vm', 'vm1', '--disk', 'disk1');
    const backups = JSON.parse(listed.stdout).backups as Array<{ kind: string; bytes: number }>;
    assert.deepEqual(
      backups.map((b) => b.kind),
      ['BACKUP_KIND_FULL', 'BACKUP_KIND_INCREMENTAL'],
    );
    assert.equal(backups[1].bytes, CLUSTER);
    const history = JSON.parse((await ctl('--json', 'history')).stdout).events as Array<{
      type: string;
      kind: string;
      job: string;
    }>;
    assert.deepEqual(
      history.filter((e) => e.kind === 'TOKEN_KIND_HYPERVISOR').map((e) => `${e.type} ${e.job}`),
      [
        'HISTORY_EVENT_TYPE_GRANTED nightly',
        'HISTORY_EVENT_TYPE_RELEASED nightly',
        'HISTORY_EVENT_TYPE_GRANTED nightly',
        'HISTORY_EVENT_TYPE_RELEASED nightly',
      ],
    );
    const runs = await ctl('backup', 'runs');
    assert.equal(runs.stdout.trim().split('\n').length, 2);
  });

  it('cancels a running backup: the run ends CANCELLED, nothing is recorded, the bitmap keeps its bits, and the next run is incremental', async () => {
    const disks = [{ name: 'disk0', node: 'disk0' }];
    assert.equal(recordOf(await backup(f, { vm: 'vm2', disks }), 'disk0').kind, 'full');
    await f.daemon.write('disk0', 0, 4 * MiB, 0x51);
    const started = (await admin('StartBackup', { vm: 'vm2' })) as BackupRun__Output;
    assert.equal(started.state, 'BACKUP_RUN_STATE_RUNNING');
    const again = await refused(admin('StartBackup', { vm: 'vm2' }));
    assert.equal(again.code, grpc.status.ALREADY_EXISTS);
    // Progress means the block job runs (the speed of job "slow" keeps it going for seconds).
    const run = async () => ((await admin('ListBackupRuns', { vm: 'vm2' })) as { runs: BackupRun__Output[] }).runs[0];
    await waitFor(
      async () => /disk0 [\d.]+ \w+ of 4\.0 MiB/.test((await run()).outputTail),
      30_000,
      'the block job to report progress',
    );
    const cancel = await ctl('backup', 'cancel', '--vm', 'vm2', '--wait');
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /^vm2  cancelled  run /m);
    const ended = await run();
    assert.equal(ended.runId, started.runId);
    assert.equal(ended.state, 'BACKUP_RUN_STATE_CANCELLED');
    assert.equal(ended.exitCode, 75);
    assert.match(ended.outputTail, /disk0 +failed: job cancelled/);

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
    assert.equal(f.store.records('vm2').length, 1, 'only the first full backup is in the catalog');
    const next = recordOf(await backup(f, { vm: 'vm2', disks }), 'disk0');
    assert.equal(next.kind, 'incremental');
    assert.equal(next.bytes, 4 * MiB);
  });
});

describe('snapshot calls without a backup directory', function () {
  this.timeout(30_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;

  before(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
    clients = testClients(coordinator.address);
  });
  after(async () => {
    clients.close();
    await coordinator.kill();
  });

  it('answers FAILED_PRECONDITION naming backups.dir, and ctl says so', async () => {
    const e = await refused(unary(clients.admin.ListBackups.bind(clients.admin), {}));
    assert.equal(e.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(e.details, 'no backup directory is configured: set backups.dir in coordinator.yaml');
    const v = await refused(verifyAll(clients, {}));
    assert.equal(v.code, grpc.status.FAILED_PRECONDITION);
    const r = await runCtl(['--coordinator', coordinator.address, 'prune', '--keep-last', '2']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /FAILED_PRECONDITION.*set backups\.dir in coordinator\.yaml/);
    const dir = tempDir();
    const local = await runCtl(['backups', '--dir', dir]);
    assert.equal(local.code, 1);
    assert.match(local.stderr, /is not a Headroom backup directory/);
  });
});

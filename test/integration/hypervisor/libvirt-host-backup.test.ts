/**
 * `headroomctl host-backup --driver libvirt` end to end: a real coordinator grants the HYPERVISOR token,
 * libvirt-backup backs a real libvirt domain up under it (named by its name, then by its UUID: one chain),
 * and a revoked token aborts libvirt's job, leaving no checkpoint behind.
 */
import { strict as assert } from 'node:assert';
import { virsh } from '../../helpers/libvirtd';
import { coordinatorPerTest, runCtl, spawnCtl } from '../ctl/ctl-process';
import { ownClusters } from '../host-backup/storage-daemon';
import { CLUSTER, MiB, useLibvirtFixture } from './libvirt-fixture';

describe('headroomctl host-backup --driver libvirt', function () {
  this.timeout(120_000);
  const f = useLibvirtFixture({ diskSizes: [256 * MiB] });
  const suite = coordinatorPerTest({ host: 'host-a' });
  const hostBackup = (vm: string, ...extra: string[]) => [
    '--coordinator',
    suite.coordinator.address,
    'host-backup',
    '--host',
    'host-a',
    '--vm',
    vm,
    '--driver',
    'libvirt',
    '--target',
    f.store.dir,
    ...extra,
  ];

  it('backs the domain up under a HYPERVISOR token, by name and then by UUID, into one chain', async () => {
    await f.domain.write('vda', 0, CLUSTER, 0x11);
    const first = await runCtl(hostBackup(f.domain.name));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /granted token \S+ \(fencing 1\) on host-a/);
    assert.match(first.stdout, /^vda +full .*\(no previous backup of this disk in the catalog\)$/m);

    await f.domain.write('vda', 8 * MiB, CLUSTER, 0x22);
    const second = await runCtl(hostBackup(f.domain.uuid));
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^vda +incremental +64\.0 KiB copied/m);
    const inc = f.store.records(f.domain.uuid, 'vda').find((r) => r.kind === 'incremental')!;
    assert.deepEqual(await ownClusters(f.store.pathOf(inc)), [[8 * MiB, CLUSTER]]);
    const history = JSON.parse(
      (await runCtl(['--coordinator', suite.coordinator.address, 'history', '--json'])).stdout,
    ).events.filter((e: { type: string }) => e.type === 'HISTORY_EVENT_TYPE_RELEASED');
    // QEMU wrote the copy, not host-backup's process tree: libvirt-backup reports what libvirt counted.
    assert.match(history[1].detail, /^success, exit 0, 64\.0 KiB written, /);
  });

  it("aborts libvirt's job when the token is revoked, exits 75, and leaves no checkpoint", async () => {
    // QEMU lets a burst through as a job starts, whatever its speed (docs/libvirt.md): enough data to outlast it.
    await f.domain.write('vda', 0, 256 * MiB, 0x33);
    const hb = spawnCtl(hostBackup(f.domain.name, '--speed', '1M'));
    const granted = await hb.waitFor('stderr', /granted token (\S+)/);
    await hb.waitFor('stderr', /[\d.]+ \w+ of [\d.]+ MiB/);
    const revoked = await runCtl([
      '--coordinator',
      suite.coordinator.address,
      'revoke',
      granted[1],
      '--reason',
      'maintenance',
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const r = await hb.done;
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /SIGTERM: aborting the backup job/);
    assert.match(r.stdout, /^vda +failed: job cancelled/m);
    assert.equal((await virsh('checkpoint-list', f.domain.name, '--name')).trim(), '');
    assert.deepEqual(f.store.records(f.domain.uuid), []);
  });

  it('refuses options of another driver', async () => {
    const qmp = await runCtl(hostBackup(f.domain.name, '--qmp-socket', '/run/x.qmp'));
    assert.equal(qmp.code, 64);
    assert.match(qmp.stderr, /--qmp-socket does not go with --driver libvirt/);
    const uri = await runCtl([
      '--coordinator',
      suite.coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'x',
      '--libvirt-uri',
      'qemu:///system',
      '--',
      'true',
    ]);
    assert.equal(uri.code, 64);
    assert.match(uri.stderr, /--libvirt-uri needs --driver libvirt/);
  });
});

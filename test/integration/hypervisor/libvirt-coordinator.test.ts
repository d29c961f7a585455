/**
 * The coordinator runs libvirt backups itself: a real coordinator whose coordinator.yaml has a
 * `driver: libvirt` hypervisor job starts them (AdminService.StartBackup, `headroomctl backup start`) as
 * host-backup children against a real libvirt domain, full then incremental, and its PruneBackups deletes
 * the checkpoints of the backups it removes.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type RunningCoordinator, startCoordinator, TEST_START_POLICY } from '../../helpers/coordinator-process';
import { virsh } from '../../helpers/libvirtd';
import { killAll, runCtl } from '../ctl/ctl-process';
import { CLUSTER, MiB, useLibvirtFixture } from './libvirt-fixture';

describe('hypervisorJobs with driver: libvirt', function () {
  this.timeout(120_000);
  const f = useLibvirtFixture({ diskSizes: [8 * MiB] });
  let coordinator: RunningCoordinator;
  const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args]);

  beforeEach(async () => {
    const config = path.join(f.dir, 'coordinator.yaml');
    fs.writeFileSync(
      config,
      `${TEST_START_POLICY}backups:\n  dir: ${f.store.dir}\nhypervisorJobs:\n  - name: nightly\n    vms: [${f.domain.name}]\n    schedule: "0 3 * * *"\n    window: 1h\n    expectedDuration: 1m\n    driver: libvirt\n    libvirtUri: qemu:///system\n`,
    );
    coordinator = await startCoordinator({ host: 'host-a', args: ['--config', config] });
  });

  afterEach(async () => {
    await killAll();
    await coordinator.kill();
  });

  it('starts libvirt backups as children of the coordinator, full then incremental, and prunes their checkpoints', async () => {
    await f.domain.write('vda', 0, CLUSTER, 0x41);
    const first = await ctl('backup', 'start', '--vm', f.domain.name, '--wait');
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /succeeded .* job nightly .*: done$/m);
    await f.domain.write('vda', 2 * MiB, CLUSTER, 0x42);
    assert.equal((await ctl('backup', 'start', '--vm', f.domain.name, '--wait')).code, 0);
    await f.domain.write('vda', 4 * MiB, CLUSTER, 0x43);
    const third = await ctl('backup', 'start', '--vm', f.domain.name, '--full', '--wait');
    assert.equal(third.code, 0, third.stdout + third.stderr);

    const listed = await ctl('--json', 'backups', '--vm', f.domain.uuid);
    const backups = JSON.parse(listed.stdout).backups as Array<{ kind: string; bytes: number }>;
    assert.deepEqual(
      backups.map((b) => b.kind),
      ['BACKUP_KIND_FULL', 'BACKUP_KIND_INCREMENTAL', 'BACKUP_KIND_FULL'],
    );
    assert.equal(backups[1].bytes, CLUSTER);
    assert.equal((await virsh('checkpoint-list', f.domain.name, '--name')).trim().split('\n').length, 3);

    const pruned = await ctl('prune', '--vm', f.domain.uuid, '--keep-last', '1');
    assert.equal(pruned.code, 0, pruned.stderr);
    const latest = f.store.records(f.domain.uuid)[0];
    assert.equal((await virsh('checkpoint-list', f.domain.name, '--name')).trim(), latest.checkpoint);
  });
});

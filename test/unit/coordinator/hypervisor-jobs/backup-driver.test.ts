import { strict as assert } from 'node:assert';
import { driverArguments } from '../../../../coordinator/hypervisor-jobs/backup-driver';

describe('backup driver command line', () => {
  it("puts the VM for {vm} in a qmp driver's socket and target, with the backup directory as the default target", () => {
    const qmp = {
      driver: 'qmp' as const,
      qmpSocket: '/run/qemu/{vm}.qmp',
      disks: 'disk0',
      maxIncrementals: 6,
      speed: 1024,
    };
    assert.deepEqual(driverArguments(qmp, { vm: 'web', defaultTarget: '/srv/backups' }), [
      '--driver',
      'qmp',
      '--qmp-socket',
      '/run/qemu/web.qmp',
      '--target',
      '/srv/backups',
      '--disk',
      'disk0',
      '--max-incrementals',
      '6',
      '--speed',
      '1024',
    ]);
    assert.deepEqual(
      driverArguments(
        { ...qmp, target: '/mnt/{vm}', disks: undefined, maxIncrementals: undefined, speed: undefined },
        { vm: 'db', full: true },
      ),
      ['--driver', 'qmp', '--qmp-socket', '/run/qemu/db.qmp', '--target', '/mnt/db', '--full'],
    );
    assert.throws(() => driverArguments({ driver: 'qmp', qmpSocket: '/q' }, { vm: 'x' }), /no target/);
  });

  it('runs a command driver\'s argv after "--", {vm} replaced in every argument', () => {
    assert.deepEqual(
      driverArguments({ driver: 'command', command: ['vzdump', '{vm}', '--dumpdir', '/dump/{vm}'] }, { vm: '101' }),
      ['--', 'vzdump', '101', '--dumpdir', '/dump/101'],
    );
  });

  it("asks host-backup to quiesce the guest when the job says so, before the driver's own arguments", () => {
    assert.deepEqual(driverArguments({ driver: 'command', command: ['true'], quiesce: 'try' }, { vm: 'db' }), [
      '--quiesce',
      'try',
      '--',
      'true',
    ]);
    assert.deepEqual(
      driverArguments({ driver: 'qmp', qmpSocket: '/q/{vm}', target: '/b', quiesce: 'require' }, { vm: 'db' }),
      ['--quiesce', 'require', '--driver', 'qmp', '--qmp-socket', '/q/db', '--target', '/b'],
    );
  });

  it("runs a libvirt driver's backup of the domain named as the VM, with its URI when one is set", () => {
    assert.deepEqual(
      driverArguments({ driver: 'libvirt', disks: 'vda', maxIncrementals: 3 }, { vm: 'web', defaultTarget: '/b' }),
      ['--driver', 'libvirt', '--target', '/b', '--disk', 'vda', '--max-incrementals', '3'],
    );
    assert.deepEqual(
      driverArguments({ driver: 'libvirt', libvirtUri: 'qemu+ssh://kvm1/system', target: '/b/{vm}' }, { vm: 'db' }),
      ['--driver', 'libvirt', '--libvirt-uri', 'qemu+ssh://kvm1/system', '--target', '/b/db'],
    );
  });
});

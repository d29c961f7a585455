import { strict as assert } from 'node:assert';
import {
  cgroupDirectory,
  parseCgroupMounts,
  parseProcCgroup,
} from '../../../../../common/backup-run/budget/cgroup-mounts';

describe('cgroup mounts', () => {
  it('finds v1 hierarchies with their controllers and the v2 one, and skips named hierarchies', () => {
    const mounts = [
      'proc /proc proc rw,relatime 0 0',
      'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
      'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0',
      'cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0',
      'cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0',
      'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime,nsdelegate 0 0',
      'cgroup /mnt/with\\040space cgroup rw,freezer 0 0',
    ].join('\n');
    assert.deepEqual(parseCgroupMounts(mounts), [
      { path: '/sys/fs/cgroup/cpu,cpuacct', version: 1, controllers: ['cpu', 'cpuacct'] },
      { path: '/sys/fs/cgroup/blkio', version: 1, controllers: ['blkio'] },
      { path: '/sys/fs/cgroup/unified', version: 2, controllers: [] },
      { path: '/mnt/with space', version: 1, controllers: ['freezer'] },
    ]);
  });

  it("reads a process's place in each hierarchy from /proc/<pid>/cgroup", () => {
    const own = parseProcCgroup(
      '12:freezer:/\n4:cpu,cpuacct:/system.slice/headroom-agent.service\n1:name=systemd:/x\n0::/system.slice/headroom-agent.service\n',
    );
    assert.equal(own.v2, '/system.slice/headroom-agent.service');
    assert.deepEqual(
      [...own.v1],
      [
        ['freezer', '/'],
        ['cpu', '/system.slice/headroom-agent.service'],
        ['cpuacct', '/system.slice/headroom-agent.service'],
      ],
    );
    assert.equal(parseProcCgroup('4:cpu:/\n').v2, undefined);
  });

  it('joins a cgroup path under its mount, the root cgroup being the mount itself', () => {
    assert.equal(cgroupDirectory('/sys/fs/cgroup', '/'), '/sys/fs/cgroup');
    assert.equal(cgroupDirectory('/sys/fs/cgroup/', '/a.slice/b.service/'), '/sys/fs/cgroup/a.slice/b.service');
  });
});

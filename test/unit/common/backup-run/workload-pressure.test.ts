import { strict as assert } from 'node:assert';
import { type DirReader, workloadCgroups, workloadPressure } from '../../../../common/backup-run/workload-pressure';

const psi = (some: number, full = 0) =>
  `some avg10=${some.toFixed(2)} avg60=${(some / 2).toFixed(2)} avg300=0.00 total=1\n` +
  `full avg10=${full.toFixed(2)} avg60=0.00 avg300=0.00 total=1\n`;

/** A cgroup tree: each path's children, and the pressure files of each cgroup. */
function tree(cgroups: Record<string, { cpu?: number; io?: number; memoryFull?: number }>): DirReader {
  const mount = '/sys/fs/cgroup';
  return {
    subdirs: (dir) => {
      const at = dir.slice(mount.length) || '/';
      const prefix = at === '/' ? '/' : `${at}/`;
      return Object.keys(cgroups)
        .filter((c) => c.startsWith(prefix) && !c.slice(prefix.length).includes('/') && c !== at)
        .map((c) => c.slice(prefix.length));
    },
    readFile: (file) => {
      const m = /^\/sys\/fs\/cgroup(\/.*)\/(cpu|io|memory)\.pressure$/.exec(file);
      const c = m && cgroups[m[1]];
      if (!c) throw Object.assign(new Error(`ENOENT ${file}`), { code: 'ENOENT' });
      if (m[2] === 'memory') return psi(0, c.memoryFull ?? 0);
      return psi(m[2] === 'cpu' ? (c.cpu ?? 0) : (c.io ?? 0));
    },
  };
}

const SYSTEMD = {
  '/init.scope': {},
  '/system.slice': { cpu: 50, io: 60 },
  '/system.slice/headroom-agent.service': { cpu: 50, io: 60 },
  '/system.slice/headroom-agent.service/headroom-agent': {},
  '/system.slice/headroom-agent.service/headroom-1-42': { cpu: 50, io: 60 },
  '/system.slice/postgresql.service': { cpu: 7, io: 12, memoryFull: 1 },
  '/system.slice/nginx.service': { cpu: 9, io: 3 },
  '/user.slice': { io: 4 },
};
const AGENT = { mount: '/sys/fs/cgroup', exclude: ['/system.slice/headroom-agent.service'] };

describe('the workload pressure, apart from the backups', () => {
  it("reads the cgroups beside the agent's path, never the agent's, its backups' or their ancestors'", () => {
    assert.deepEqual(workloadCgroups(AGENT, tree(SYSTEMD)), [
      '/init.scope',
      '/user.slice',
      '/system.slice/nginx.service',
      '/system.slice/postgresql.service',
    ]);
  });

  it("takes each figure's highest among them: the backup's own stalls (60 % io) do not count", () => {
    const p = workloadPressure(AGENT, tree(SYSTEMD))!;
    assert.deepEqual(
      [p.cpuPressure!.someAvg10, p.ioPressure!.someAvg10, p.ioPressure!.someAvg60, p.memoryPressure!.fullAvg10],
      [9, 12, 6, 1],
    );
  });

  it('leaves out the subtree of a backups parent elsewhere (budget.cgroupParent) as well', () => {
    const cgroups = { ...SYSTEMD, '/backups.slice': { io: 90 }, '/backups.slice/headroom-1-42': { io: 90 } };
    const scope = { ...AGENT, exclude: [...AGENT.exclude, '/backups.slice'] };
    assert.ok(!workloadCgroups(scope, tree(cgroups)).some((c) => c.startsWith('/backups.slice')));
    assert.equal(workloadPressure(scope, tree(cgroups))!.ioPressure!.someAvg10, 12);
  });

  it('has nothing to tell apart when the agent and its backups are in the root cgroup, or a file is gone', () => {
    const root = { '/headroom-1-42': { io: 60 } };
    assert.equal(workloadPressure({ mount: '/sys/fs/cgroup', exclude: ['/'] }, tree(root)), undefined);
    const gone = tree(SYSTEMD);
    const read = gone.readFile;
    gone.readFile = (f) => (f.includes('nginx') ? read('/nope') : read(f));
    assert.equal(workloadPressure(AGENT, gone), undefined);
  });
});

/**
 * Where the cgroup hierarchies are mounted (/proc/self/mounts) and where a process sits in them
 * (/proc/<pid>/cgroup): what detection and the cgroup adapters start from. Pure parsing.
 */

export interface CgroupMount {
  /** The mount point, e.g. /sys/fs/cgroup/cpu,cpuacct or /sys/fs/cgroup. */
  path: string;
  version: 1 | 2;
  /** The v1 controllers bound to this hierarchy; empty for v2 (its controllers are listed in cgroup.controllers). */
  controllers: string[];
}

/** The controllers of cgroup v1, to tell them from the mount's other options (rw, nosuid, clone_children...). */
const V1_CONTROLLERS = new Set([
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'net_cls',
  'net_prio',
  'blkio',
  'perf_event',
  'hugetlb',
  'pids',
  'rdma',
  'misc',
]);

/** Undoes the octal escapes of /proc/self/mounts (a space is \040). */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The cgroup and cgroup2 mounts listed in /proc/self/mounts ("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0"). */
export function parseCgroupMounts(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const [, mountPoint, type, options] = line.split(' ');
    if (!options) continue;
    if (type === 'cgroup2') mounts.push({ path: unescapeMountPath(mountPoint), version: 2, controllers: [] });
    else if (type === 'cgroup') {
      const controllers = options.split(',').filter((o) => V1_CONTROLLERS.has(o));
      // Named hierarchies without a controller (name=systemd) hold no resources to limit.
      if (controllers.length > 0) mounts.push({ path: unescapeMountPath(mountPoint), version: 1, controllers });
    }
  }
  return mounts;
}

export interface ProcessCgroups {
  /** The process's cgroup in the v2 hierarchy ("0::/path"), when there is one. */
  v2?: string;
  /** v1 controller → the process's cgroup in that controller's hierarchy. */
  v1: Map<string, string>;
}

/** Parses /proc/<pid>/cgroup: "0::/system.slice/x.service" for v2, "4:cpu,cpuacct:/user.slice" for v1. */
export function parseProcCgroup(text: string): ProcessCgroups {
  const result: ProcessCgroups = { v1: new Map() };
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (line.slice(0, first) === '0' && controllers === '') result.v2 = path;
    else for (const c of controllers.split(',')) if (V1_CONTROLLERS.has(c)) result.v1.set(c, path);
  }
  return result;
}

/** The directory of cgroup `cgroupPath` in the hierarchy mounted at `mount` ("/" is the mount itself). */
export function cgroupDirectory(mount: string, cgroupPath: string): string {
  const rel = cgroupPath.replace(/^\/+|\/+$/g, '');
  return rel ? `${mount.replace(/\/+$/, '')}/${rel}` : mount.replace(/\/+$/, '') || '/';
}

/**
 * The pressure the workload feels, without the backups' own stalls. /proc/pressure counts every task's
 * waiting: a backup held by io.max waits on I/O, and one at the least CPU weight waits for the CPU, so the
 * system's figures rise because the backup is held — and a controller reading them would hold it further,
 * down to its floor, whatever the workload feels.
 *
 * Under cgroup v2 every cgroup has its own pressure files (cpu.pressure, io.pressure, memory.pressure).
 * The workload is what runs beside the agent: the cgroups next to each cgroup on the paths from the root
 * to the agent's own and to the backups' parent (other services, slices, a workload's own cgroup), those
 * paths excluded. Each figure is the highest among them: the service that waits most is the one a backup
 * must make way for. Where there is no such cgroup (the agent in the root cgroup beside everything, or
 * cgroup v1), /proc/pressure is all there is, and the figures include the backups' stalls.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { v1 } from '../../proto';
import { parsePressureStall } from './pressure-stall';

/** Where the agent and its backups are in the cgroup v2 hierarchy. */
export interface PressureScope {
  /** The v2 mount, /sys/fs/cgroup. */
  mount: string;
  /** Paths within it (from /proc/self/cgroup, "/system.slice/headroom-agent.service") of the agent and the backups' parent. */
  exclude: string[];
}

export interface DirReader {
  /** The names of the subdirectories of a directory (child cgroups); [] when it cannot be read. */
  subdirs(dir: string): string[];
  readFile(file: string): string;
}

export const realDirReader: DirReader = {
  subdirs: (dir) => {
    try {
      return fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return [];
    }
  },
  readFile: (file) => fs.readFileSync(file, 'utf8'),
};

/** The cgroups beside the excluded ones' paths (cgroup paths, "/" rooted), in a stable order. */
export function workloadCgroups(scope: PressureScope, dirs: DirReader): string[] {
  const onPath = new Set<string>(['/']);
  for (const p of scope.exclude) {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) onPath.add(`/${parts.slice(0, i).join('/')}`);
  }
  const out = new Set<string>();
  for (const parent of onPath) {
    if (scope.exclude.includes(parent)) continue; // the backups' parent's children are backups
    for (const child of dirs.subdirs(path.join(scope.mount, parent)).sort()) {
      const cgroup = path.posix.join(parent, child);
      if (!onPath.has(cgroup)) out.add(cgroup);
    }
  }
  return [...out];
}

const RESOURCES = ['cpu', 'io', 'memory'] as const;

/**
 * The report's PSI fields from the workload's cgroups: each average the highest among them. Undefined when
 * there is no such cgroup or one of the files cannot be read (the caller falls back to /proc/pressure).
 */
export function workloadPressure(scope: PressureScope, dirs: DirReader): Partial<v1.LoadReport> | undefined {
  const cgroups = workloadCgroups(scope, dirs);
  if (cgroups.length === 0) return undefined;
  const out: Partial<v1.LoadReport> = {};
  try {
    for (const r of RESOURCES) {
      const all = cgroups.map((c) => parsePressureStall(dirs.readFile(path.join(scope.mount, c, `${r}.pressure`))));
      out[`${r}Pressure`] = {
        someAvg10: Math.max(...all.map((p) => p.some.avg10)),
        someAvg60: Math.max(...all.map((p) => p.some.avg60)),
        fullAvg10: Math.max(...all.map((p) => p.full?.avg10 ?? 0)),
        fullAvg60: Math.max(...all.map((p) => p.full?.avg60 ?? 0)),
      };
    }
  } catch {
    return undefined;
  }
  return out;
}

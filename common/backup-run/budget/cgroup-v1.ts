/**
 * Budgets through cgroup v1, for guests whose controllers are on v1 hierarchies: each backup gets a group
 * (headroom-<agent pid>-<pgid>) in the cpu, blkio and freezer hierarchies, under the agent's own groups
 * or a configured parent. CPU: the CFS quota (cpu.cfs_quota_us per cpu.cfs_period_us). I/O:
 * blkio.throttle.{read,write}_bps_device on every whole disk. Pause: freezer.state FROZEN.
 *
 * What v1 cannot do: buffered writes reach the disk later from the kernel's flusher threads, outside the
 * group, so blkio throttles reads and direct writes only; and a frozen process cannot even die of SIGKILL
 * until it is thawed (run-budget.ts thaws before a stop, and the next agent start thaws what a dead
 * agent left frozen). CPU time comes from cpuacct when it is mounted, I/O from /proc (process-usage.ts),
 * which counts buffered writes as they are made.
 */
import { BlockDevice, wholeDisks } from './block-devices';
import { CgroupDir } from './cgroup-dir';
import { cgroupDirectory, CgroupMount } from './cgroup-mounts';
import type { Prepared } from './cgroup-v2';
import { Budget, cpuQuotaUs, CPU_PERIOD_US, EnforcementMechanism, Enforcer, Usage } from './enforcer';
import { type CgroupAdapterOptions, CgroupPlace, JobCgroups, reapStaleGroups } from './job-cgroups';
import { ProcessUsage } from './process-usage';

/** `parent` applies in every hierarchy. */
export interface CgroupV1Options extends CgroupAdapterOptions {
  /** The v1 hierarchies (parseCgroupMounts). */
  mounts: CgroupMount[];
  /** Controller → the agent's own cgroup in its hierarchy (parseProcCgroup(...).v1). */
  own: Map<string, string>;
}

const REQUIRED = ['cpu', 'blkio', 'freezer'] as const;
/** What each hierarchy must offer in the parent group (kernels without CFS bandwidth or blk-throttle lack them). */
const REQUIRED_FILES: Record<string, string> = { cpu: 'cpu.cfs_quota_us', blkio: 'blkio.throttle.read_bps_device' };

type Controller = (typeof REQUIRED)[number] | 'cpuacct';

/**
 * Checks that groups can be created in the cpu, blkio and freezer hierarchies (by creating and removing
 * one), and removes the groups a dead agent left there. Returns the mechanism, or the reason it cannot be used.
 */
export function prepareCgroupV1(o: CgroupV1Options): Prepared {
  const selfPid = o.selfPid ?? process.pid;
  const mountOf = (c: string) => o.mounts.find((m) => m.version === 1 && m.controllers.includes(c));
  const missing = REQUIRED.filter((c) => !mountOf(c));
  if (missing.length > 0) return { reason: `cgroup v1: no ${missing.join(', ')} hierarchy mounted` };
  const controllers: Controller[] = [...REQUIRED, ...(mountOf('cpuacct') ? (['cpuacct'] as const) : [])];
  // Co-mounted controllers (cpu,cpuacct) share one directory: one place each, in this order.
  const places: CgroupPlace[] = [];
  const index = new Map<Controller, number>();
  for (const c of controllers) {
    const mount = mountOf(c)!;
    const place = {
      parent: cgroupDirectory(mount.path, o.parent || o.own.get(c) || '/'),
      home: cgroupDirectory(mount.path, o.own.get(c) || '/'),
    };
    let i = places.findIndex((p) => p.parent === place.parent);
    if (i < 0) i = places.push(place) - 1;
    index.set(c, i);
  }
  for (const [c, file] of Object.entries(REQUIRED_FILES)) {
    const parent = places[index.get(c as Controller)!].parent;
    if (!new CgroupDir(parent).has(file)) return { reason: `cgroup v1: no ${file} in ${parent}` };
  }
  for (const { parent } of places) {
    try {
      const probe = CgroupDir.create(`${parent}/headroom-probe-${selfPid}`, o.removeDir);
      probe.remove();
    } catch (err) {
      return { reason: `cgroup v1: ${(err as Error).message}` };
    }
  }
  const thaw = (d: CgroupDir) => d.has('freezer.state') && d.write('freezer.state', 'THAWED');
  for (const { parent } of places) {
    const reaped = reapStaleGroups(parent, thaw, { alive: o.alive, removeDir: o.removeDir });
    if (reaped.length > 0) o.log.info('removed cgroups left by an agent that is gone', { cgroups: reaped });
  }
  const disks = wholeDisks(o.sysBlock);
  const mechanism: EnforcementMechanism = {
    enforcement: 'CGROUP_V1',
    detail: '',
    enforce(group) {
      const cgroups = JobCgroups.create(group, selfPid, places, { proc: o.proc, removeDir: o.removeDir });
      const dir = (c: Controller) => (index.has(c) ? cgroups.dirs[index.get(c)!].dir : undefined);
      return new CgroupV1Enforcer(
        cgroups,
        { cpu: dir('cpu')!, blkio: dir('blkio')!, freezer: dir('freezer')!, cpuacct: dir('cpuacct') },
        disks,
        o,
      );
    },
  };
  return { mechanism };
}

interface V1Dirs {
  cpu: CgroupDir;
  blkio: CgroupDir;
  freezer: CgroupDir;
  cpuacct?: CgroupDir;
}

class CgroupV1Enforcer implements Enforcer {
  readonly enforcement = 'CGROUP_V1' as const;
  readonly detail: string;
  private readonly processes: ProcessUsage;
  private lastCpuSeconds = 0;
  private frozen = false;

  constructor(
    private readonly cgroups: JobCgroups,
    private readonly dirs: V1Dirs,
    private readonly disks: BlockDevice[],
    private readonly o: CgroupV1Options,
  ) {
    this.processes = new ProcessUsage(() => cgroups.members(), o.proc);
    const io =
      disks.length > 0
        ? `blkio throttling on ${disks.map((d) => d.name).join(', ')}`
        : 'no disk found in /sys/block: I/O not limited';
    this.detail = `cgroup v1 ${dirs.cpu.path} (cpu, blkio, freezer): CFS quota${o.background ? ' and cpu.shares 2' : ''}, ${io}, freezer; buffered writes are flushed outside the group under cgroup v1, so only reads and direct writes are throttled`;
  }

  apply(budget: Budget): void {
    this.cgroups.adoptStrays();
    // The least weight, as under v2 (cgroup-v2.ts): within its quota, the backup runs when its peers do not.
    if (this.o.background) this.dirs.cpu.write('cpu.shares', '2');
    this.dirs.cpu.write('cpu.cfs_period_us', String(CPU_PERIOD_US));
    this.dirs.cpu.write('cpu.cfs_quota_us', budget.cpuPercent > 0 ? String(cpuQuotaUs(budget.cpuPercent)) : '-1');
    // A rate of 0 removes the device's rule.
    const rate = Math.max(0, Math.round(budget.ioBytesPerSec));
    for (const d of this.disks) {
      this.dirs.blkio.write('blkio.throttle.read_bps_device', `${d.majorMinor} ${rate}`);
      this.dirs.blkio.write('blkio.throttle.write_bps_device', `${d.majorMinor} ${rate}`);
    }
  }

  pause(): void {
    this.cgroups.adoptStrays();
    this.cgroups.releaseExempt();
    this.dirs.freezer.write('freezer.state', 'FROZEN');
    this.frozen = true;
  }

  resume(): void {
    this.dirs.freezer.write('freezer.state', 'THAWED');
    this.frozen = false;
  }

  release(): void {
    if (!this.frozen) return;
    try {
      this.resume();
    } catch (err) {
      this.o.log.warn('could not thaw the cgroup of a backup being stopped', { error: err as Error });
    }
  }

  usage(): Usage {
    const fromProc = this.processes.sample();
    const ns = this.dirs.cpuacct?.read('cpuacct.usage');
    if (ns !== undefined && /^\d+/.test(ns.trim())) this.lastCpuSeconds = Number(ns.trim()) / 1e9;
    return { cpuSeconds: this.dirs.cpuacct ? this.lastCpuSeconds : fromProc.cpuSeconds, ioBytes: fromProc.ioBytes };
  }

  async close(): Promise<void> {
    this.release();
    this.usage();
    const left = await this.cgroups.remove();
    if (left.length > 0)
      this.o.log.warn('could not remove the cgroup of a finished backup: processes are left in it', { cgroups: left });
  }
}

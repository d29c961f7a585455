/**
 * Budgets through cgroup v2: each backup gets a group of its own (headroom-<agent pid>-<pgid>) under the
 * agent's cgroup or a configured parent, with `cpu.max` for CPU, `io.max` on every whole disk for I/O,
 * `memory.high` for memory and `cgroup.freeze` to pause. CPU and I/O usage come from the group's own
 * `cpu.stat` and `io.stat`, which count every process that ever ran in it.
 *
 * The memory controller is enabled beside io wherever the kernel offers it, for two reasons: memory.high
 * keeps the backup's page cache from pushing out the workload's (the kernel reclaims from the group once
 * it holds that much), and cgroup writeback needs both controllers: only then are the backup's buffered
 * writes charged to its group and held to its io.max when they are flushed (without it, and under v1, the
 * flusher writes them for the root group, unthrottled).
 *
 * cgroup v2 lets a cgroup hand controllers to its children only when it holds no processes itself. When
 * the parent is the agent's own cgroup and the agent is alone in it (a systemd service with
 * `Delegate=yes`), the agent moves itself into a leaf, `headroom-agent`, first; a parent holding other
 * processes is refused with that reason.
 */
import type { Logger } from '../../util/log';
import { CgroupDir } from './cgroup-dir';
import { cgroupDirectory } from './cgroup-mounts';
import { BlockDevice, wholeDisks } from './block-devices';
import {
  autoMemoryHighBytes,
  Budget,
  cpuQuotaUs,
  CPU_PERIOD_US,
  EnforcementError,
  EnforcementMechanism,
  Enforcer,
  Usage,
} from './enforcer';
import { type CgroupAdapterOptions, JobCgroups, reapStaleGroups } from './job-cgroups';

export interface CgroupV2Options extends CgroupAdapterOptions {
  /** Where the v2 hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified beside v1. */
  mount: string;
  /** The agent's own cgroup, from /proc/self/cgroup ("0::/system.slice/headroom-agent.service"). */
  own: string;
  /** memory.high of every backup's group, bytes; 0: no limit; default derived from its budget (autoMemoryHighBytes). */
  memoryHighBytes?: number;
}

/** A mechanism ready to use, or why it cannot be. */
export type Prepared = { mechanism: EnforcementMechanism } | { reason: string };

const NEEDED = ['cpu', 'io'];
/** Enabled when the kernel offers it; without it, memory and writeback are not held (the detail says so). */
const MEMORY = 'memory';
/** The leaf the agent moves into when its own cgroup must hand out controllers. */
const AGENT_LEAF = 'headroom-agent';

/**
 * The backup's group yields the CPU to its peers (the least weight): under its cpu.max it still runs only
 * when they do not want the CPU, so a workload's requests are not queued behind it. Its peers are what
 * shares the parent (budget.cgroupParent): a workload elsewhere competes with that parent's weight.
 */
const BACKGROUND_CPU_WEIGHT = 1;

const words = (text: string | undefined) => (text ?? '').trim().split(/\s+/).filter(Boolean);

/**
 * Checks that the cpu and io controllers can be given to groups under the parent, enabling them in its
 * cgroup.subtree_control (moving the agent into a leaf when it must), and removes the groups a dead agent
 * left there. Returns the mechanism, or the reason it cannot be used.
 */
export function prepareCgroupV2(o: CgroupV2Options): Prepared {
  const selfPid = o.selfPid ?? process.pid;
  const parentPath = o.parent || o.own;
  const parent = new CgroupDir(cgroupDirectory(o.mount, parentPath), o.removeDir);
  const available = parent.read('cgroup.controllers');
  if (available === undefined) return { reason: `cgroup v2: no cgroup ${parent.path}` };
  const missing = NEEDED.filter((c) => !words(available).includes(c));
  if (missing.length > 0) {
    return {
      reason: `cgroup v2: the ${missing.join(' and ')} controller${missing.length > 1 ? 's are' : ' is'} not available in ${parent.path} (it has: ${words(available).join(' ') || 'none'})`,
    };
  }
  const wanted = words(available).includes(MEMORY) ? [...NEEDED, MEMORY] : NEEDED;
  let home = new CgroupDir(cgroupDirectory(o.mount, o.own));
  if (!wanted.every((c) => words(parent.read('cgroup.subtree_control')).includes(c))) {
    const enable = () => parent.write('cgroup.subtree_control', wanted.map((c) => `+${c}`).join(' '));
    try {
      enable();
    } catch (err) {
      const busy = err instanceof EnforcementError && err.code === 'EBUSY';
      const alone = home.path === parent.path && parent.procs().every((pid) => pid === selfPid);
      if (!busy || !alone) {
        const why = busy
          ? `: it holds other processes; set budget.cgroupParent to a delegated cgroup without processes`
          : '';
        return { reason: `cgroup v2: ${(err as Error).message}${why}` };
      }
      try {
        home = CgroupDir.create(`${parent.path}/${AGENT_LEAF}`, o.removeDir);
        home.adopt(selfPid);
        enable();
        o.log.info('moved the agent into a leaf cgroup, so that its cgroup can hand controllers to the backups', {
          cgroup: home.path,
        });
      } catch (again) {
        return { reason: `cgroup v2: ${(again as Error).message}` };
      }
    }
  }
  const reaped = reapStaleGroups(parent.path, (d) => d.has('cgroup.freeze') && d.write('cgroup.freeze', '0'), {
    alive: o.alive,
    removeDir: o.removeDir,
  });
  if (reaped.length > 0) o.log.info('removed cgroups left by an agent that is gone', { cgroups: reaped });
  const disks = wholeDisks(o.sysBlock);
  const mechanism: EnforcementMechanism = {
    enforcement: 'CGROUP_V2',
    detail: '',
    pressureScope: { mount: o.mount, exclude: [...new Set([o.own, parentPath])] },
    enforce(group) {
      const cgroups = JobCgroups.create(group, selfPid, [{ parent: parent.path, home: home.path }], {
        proc: o.proc,
        removeDir: o.removeDir,
      });
      const memory = wanted.includes(MEMORY) ? { configuredBytes: o.memoryHighBytes } : undefined;
      return new CgroupV2Enforcer(cgroups, disks, memory, o.background === true, o.log);
    },
  };
  return { mechanism };
}

/** "usage_usec 123" from cpu.stat, and the rbytes+wbytes of every device in io.stat. */
export function parseV2Usage(cpuStat: string | undefined, ioStat: string | undefined): Partial<Usage> {
  const usage: Partial<Usage> = {};
  const usec = cpuStat !== undefined ? /^usage_usec (\d+)/m.exec(cpuStat) : null;
  if (usec) usage.cpuSeconds = Number(usec[1]) / 1e6;
  if (ioStat !== undefined) {
    let bytes = 0;
    for (const m of ioStat.matchAll(/\b[rw]bytes=(\d+)/g)) bytes += Number(m[1]);
    usage.ioBytes = bytes;
  }
  return usage;
}

class CgroupV2Enforcer implements Enforcer {
  readonly enforcement = 'CGROUP_V2' as const;
  readonly detail: string;
  private readonly dir: CgroupDir;
  private last: Usage = { cpuSeconds: 0, ioBytes: 0 };
  private frozen = false;

  constructor(
    private readonly cgroups: JobCgroups,
    private readonly disks: BlockDevice[],
    /** Set when the memory controller is enabled; configuredBytes as in CgroupV2Options.memoryHighBytes. */
    private readonly memory: { configuredBytes: number | undefined } | undefined,
    private readonly background: boolean,
    private readonly log: Logger,
  ) {
    this.dir = cgroups.dirs[0].dir;
    const writeback = memory ? 'buffered writes included' : 'buffered writes not held: no memory controller';
    const io =
      disks.length > 0
        ? `io.max on ${disks.map((d) => d.name).join(', ')} (read and write each held to the budget, ${writeback})`
        : 'no disk found in /sys/block: I/O not limited';
    const mem = !memory
      ? 'memory not held (no memory controller)'
      : memory.configuredBytes === 0
        ? 'memory not held (budget.memoryHighMiB: 0)'
        : 'memory.high (its page cache included)';
    const cpu = background ? `cpu.max and cpu.weight ${BACKGROUND_CPU_WEIGHT}` : 'cpu.max';
    this.detail = `cgroup v2 ${this.dir.path}: ${cpu}, ${io}, ${mem}, cgroup.freeze`;
  }

  apply(budget: Budget): void {
    this.cgroups.adoptStrays();
    if (this.background) this.dir.write('cpu.weight', String(BACKGROUND_CPU_WEIGHT));
    this.dir.write('cpu.max', `${budget.cpuPercent > 0 ? cpuQuotaUs(budget.cpuPercent) : 'max'} ${CPU_PERIOD_US}`);
    const rate = budget.ioBytesPerSec > 0 ? String(Math.round(budget.ioBytesPerSec)) : 'max';
    for (const d of this.disks) this.dir.write('io.max', `${d.majorMinor} rbps=${rate} wbps=${rate}`);
    if (this.memory) {
      const bytes = this.memory.configuredBytes ?? autoMemoryHighBytes(budget);
      this.dir.write('memory.high', bytes > 0 ? String(bytes) : 'max');
    }
  }

  pause(): void {
    this.cgroups.adoptStrays();
    this.cgroups.releaseExempt();
    this.dir.write('cgroup.freeze', '1');
    this.frozen = true;
  }

  resume(): void {
    this.dir.write('cgroup.freeze', '0');
    this.frozen = false;
  }

  release(): void {
    if (!this.frozen) return;
    try {
      this.resume();
    } catch (err) {
      this.log.warn('could not thaw the cgroup of a backup being stopped', { error: err as Error });
    }
  }

  usage(): Usage {
    this.last = { ...this.last, ...parseV2Usage(this.dir.read('cpu.stat'), this.dir.read('io.stat')) };
    return { ...this.last };
  }

  async close(): Promise<void> {
    this.release();
    this.usage();
    const left = await this.cgroups.remove();
    if (left.length > 0)
      this.log.warn('could not remove the cgroup of a finished backup: processes are left in it', { cgroups: left });
  }
}

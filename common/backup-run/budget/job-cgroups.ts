/**
 * The cgroups made for one backup's process group, shared by the v1 adapter (one per hierarchy) and the
 * v2 adapter (one): created and joined right after the spawn, kept complete (members of the process group
 * that were forked before the leader moved are brought in), with the watchdog kept out, and removed when
 * the backup is gone. Also names them, so that the groups a dead agent left behind can be found and
 * cleaned up at the next start.
 */
import * as fs from 'node:fs';
import type { Logger } from '../../util/log';
import { CgroupDir, RemoveDir } from './cgroup-dir';
import type { EnforcedGroup } from './enforcer';
import { groupMembers, ProcReader, realProc } from './process-usage';

/** Where a job's group goes in one hierarchy. */
/** What both cgroup adapters take besides their hierarchy. */
export interface CgroupAdapterOptions {
  /** The cgroup to create the backups' groups in; default the agent's own. */
  parent?: string;
  log: Logger;
  /** Default process.pid. */
  selfPid?: number;
  /** Default /sys/block. */
  sysBlock?: string;
  proc?: ProcReader;
  removeDir?: RemoveDir;
  /** Whether an agent pid still runs, to tell stale groups; default kill(pid, 0). */
  alive?: (pid: number) => boolean;
  /**
   * Give each group the least CPU weight, so that under its cap it runs on CPU time its peers leave idle:
   * guest backups (the agent's). Not hypervisor backups (host-backup): one holds the host's HYPERVISOR
   * token, and on a host whose VMs keep every core busy it must still progress at its cap.
   */
  background?: boolean;
}

export interface CgroupPlace {
  /** The directory the job's group is created in. */
  parent: string;
  /** Our own group there: where the watchdog is sent back to. */
  home: string;
}

/** How long close() waits for the processes to leave before removing the groups: they are gone by then, or about to be. */
export const REMOVE_WAIT_MS = 2_000;

/** The group of process group `pgid` started by agent `agentPid`; the agent's pid tells a live agent's groups from a dead one's. */
export function jobGroupName(agentPid: number, pgid: number): string {
  return `headroom-${agentPid}-${pgid}`;
}

/** The agent pid in a group name made by jobGroupName, or undefined for another directory. */
export function groupAgentPid(name: string): number | undefined {
  const m = /^headroom-(\d+)-\d+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Thaws and removes the groups that agents which no longer run left in `parent` (killed while a backup
 * ran). Thawing matters: a process frozen by cgroup v1 cannot even die of SIGKILL, so the watchdog's kill
 * lands only now. Groups that still hold processes are left for the next start. Returns the removed paths.
 */
export function reapStaleGroups(
  parent: string,
  thaw: (dir: CgroupDir) => void,
  options: { alive?: (pid: number) => boolean; removeDir?: RemoveDir } = {},
): string[] {
  const alive = options.alive ?? processAlive;
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const agentPid = groupAgentPid(name);
    if (agentPid === undefined || alive(agentPid)) continue;
    const dir = new CgroupDir(`${parent}/${name}`, options.removeDir);
    try {
      thaw(dir);
    } catch {
      // removing it may still work; if not, the next start tries again
    }
    if (dir.procs().length === 0 && dir.remove()) removed.push(dir.path);
  }
  return removed;
}

export class JobCgroups {
  private constructor(
    private readonly group: EnforcedGroup,
    /** One per hierarchy; the first is where the members are listed. */
    readonly dirs: { dir: CgroupDir; home: CgroupDir }[],
    private readonly proc: ProcReader,
  ) {}

  /** Creates the group in every place and moves the process group's leader and members into it. Throws EnforcementError. */
  static create(
    group: EnforcedGroup,
    agentPid: number,
    places: CgroupPlace[],
    options: { proc?: ProcReader; removeDir?: RemoveDir } = {},
  ): JobCgroups {
    const name = jobGroupName(agentPid, group.pgid);
    const dirs: { dir: CgroupDir; home: CgroupDir }[] = [];
    try {
      for (const p of places)
        dirs.push({ dir: CgroupDir.create(`${p.parent}/${name}`, options.removeDir), home: new CgroupDir(p.home) });
      const groups = new JobCgroups(group, dirs, options.proc ?? realProc);
      // The leader first, at once: what it forks from now on is born inside.
      for (const { dir } of dirs) dir.adopt(group.pgid);
      groups.adoptStrays();
      return groups;
    } catch (err) {
      // Another mechanism takes the group: leave no half-made groups behind (those it already joined stay
      // until it is gone, without limits, and are removed at the agent's next start).
      for (const { dir } of dirs) dir.remove();
      throw err;
    }
  }

  /** The processes in the group now. */
  members(): number[] {
    return this.dirs[0].dir.procs();
  }

  /**
   * Brings in the members of the process group that are not in the group yet (forked before the leader was
   * moved), but never the exempt one. Throws EnforcementError.
   */
  adoptStrays(): void {
    const exempt = this.group.exempt();
    const strays = groupMembers(this.group.pgid, exempt, this.proc);
    for (const { dir } of this.dirs) {
      const inside = new Set(dir.procs());
      for (const pid of strays) if (!inside.has(pid)) dir.adopt(pid);
    }
  }

  /** Sends the exempt process (the watchdog) back to our own groups, before the group is frozen. Throws EnforcementError. */
  releaseExempt(): void {
    const exempt = this.group.exempt();
    if (exempt === undefined) return;
    for (const { dir, home } of this.dirs) if (dir.procs().includes(exempt)) home.adopt(exempt);
  }

  /** Removes every group once its processes are gone; returns the paths it could not remove. */
  async remove(): Promise<string[]> {
    const left: string[] = [];
    for (const { dir } of this.dirs) if (!(await dir.removeWhenEmpty(REMOVE_WAIT_MS))) left.push(dir.path);
    return left;
  }
}

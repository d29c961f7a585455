/**
 * Measuring what a process group really uses, for the budget integration tests: read straight from
 * /proc/<pid>/stat, independently of the agent's own counters.
 */
import * as fs from 'node:fs';
import { groupMembers, parseProcStat } from '../../common/backup-run/budget/process-usage';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function statOf(pid: number) {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // exited meanwhile
  }
}

/** CPU seconds used so far by the live members of process group `pgid` (with the children they reaped). */
export function groupCpuSeconds(pgid: number): number {
  return groupMembers(pgid, undefined).reduce((sum, pid) => sum + (statOf(pid)?.cpuSeconds ?? 0), 0);
}

/** The share of one core, %, that group `pgid` used over the next `ms`. */
export async function cpuPercentOver(pgid: number, ms: number): Promise<number> {
  const before = groupCpuSeconds(pgid);
  const start = performance.now();
  await sleep(ms);
  return ((groupCpuSeconds(pgid) - before) / ((performance.now() - start) / 1_000)) * 100;
}

/** Members of group `pgid` in the stopped state (T), as `ps` shows them. */
export function stoppedMembers(pgid: number): number[] {
  return groupMembers(pgid, undefined).filter((pid) => statOf(pid)?.state === 'T');
}

/** Whether `pid` is gone or a zombie: it does nothing any more. */
export function processGone(pid: number): boolean {
  const stat = statOf(pid);
  return stat === undefined || stat.state === 'Z' || stat.state === 'X';
}

/** Directories named `name` in the cgroup hierarchies under /sys/fs/cgroup (up to three levels down). */
export function cgroupDirsNamed(name: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name === name) found.push(`${dir}/${e.name}`);
      else if (depth > 0) walk(`${dir}/${e.name}`, depth - 1);
    }
  };
  walk('/sys/fs/cgroup', 3);
  return found;
}

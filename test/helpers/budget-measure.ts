/**
 * Measuring what a process group really uses, for the budget integration tests: read straight from
 * /proc/<pid>/stat, independently of the agent's own counters. The machine may be busy with other work: a
 * budget is an upper bound, which other load cannot push a group over, while that a group runs at all, or
 * runs past a budget, is shown by waiting for it to happen rather than by a share over a fixed time.
 */
import * as fs from 'node:fs';
import { groupMembers, parseProcStat } from '../../common/backup-run/budget/process-usage';
import { waitFor } from './wait';

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

/**
 * Waits until group `pgid` has used `cpuSeconds` more CPU than it had: proof that it runs, which a busy
 * machine only delays (a share of a core over a fixed time is what other processes take away).
 */
export async function cpuUsed(pgid: number, cpuSeconds: number, timeoutMs = 60_000): Promise<void> {
  const start = groupCpuSeconds(pgid);
  const what = `process group ${pgid} to use ${cpuSeconds} s of CPU`;
  await waitFor(() => groupCpuSeconds(pgid) - start >= cpuSeconds, timeoutMs, what);
}

/**
 * Waits for a `windowMs` window in which group `pgid` used more than `percent` % of a core, and returns
 * that share: more than a budget of `percent` % lets through, so proof that no such budget holds it. Other
 * processes on a busy machine take some windows from it, not all of them.
 */
export async function cpuPercentAbove(
  pgid: number,
  percent: number,
  timeoutMs = 60_000,
  windowMs = 1_000,
): Promise<number> {
  const until = Date.now() + timeoutMs;
  let most = 0;
  for (;;) {
    const share = await cpuPercentOver(pgid, windowMs);
    if (share > percent) return share;
    most = Math.max(most, share);
    if (Date.now() > until) {
      const seen = `at most ${most.toFixed(1)} %`;
      throw new Error(
        `process group ${pgid} never used more than ${percent} % of a core over ${windowMs} ms in ${timeoutMs} ms (${seen})`,
      );
    }
  }
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

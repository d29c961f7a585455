/**
 * What a set of processes has used, read from /proc: CPU time from /proc/<pid>/stat and storage I/O from
 * /proc/<pid>/io, summed over the members of a backup's process group (or cgroup) into counters that only
 * grow, so that the load report can say how much of the VM's load was the backup's own.
 *
 * Processes come and go between samples. A process's counters include the children it has reaped
 * (cutime/cstime, and the I/O of reaped children), so when a member we saw disappears while its parent is
 * still a member, the parent's next jump already contains it: we take the part we had counted off the
 * parent's increase instead of counting it twice. What a process did between our last look and its exit
 * is lost when nobody in the group reaps it; samples are seconds apart, so that is a small error.
 */
import * as fs from 'node:fs';

/** Cumulative usage since the counter started. */
export interface Usage {
  /** CPU time, seconds, summed over cores. */
  cpuSeconds: number;
  /** Bytes read from and written to storage (not the page cache). */
  ioBytes: number;
}

/** Clock ticks per second of /proc/<pid>/stat: USER_HZ, 100 on every Linux architecture Node runs on. */
const USER_HZ = 100;

export interface ProcStat {
  state: string;
  ppid: number;
  pgrp: number;
  /** utime + stime + cutime + cstime, seconds: the process, its exited threads and its reaped children. */
  cpuSeconds: number;
  /** Start time in ticks since boot: with the pid, tells a process from a later one that reused its pid. */
  startTicks: number;
}

/** Parses /proc/<pid>/stat; undefined when it is not one. "pid (comm) state ppid pgrp ..." where comm may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // Fields from the state on: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) cutime(16) cstime(17) ... starttime(22).
  const f = text
    .slice(close + 2)
    .trim()
    .split(' ');
  if (f.length < 20) return undefined;
  const n = (i: number) => Number(f[i - 3]);
  const ticks = n(14) + n(15) + n(16) + n(17);
  if (!Number.isFinite(ticks)) return undefined;
  return { state: f[0], ppid: n(4), pgrp: n(5), cpuSeconds: ticks / USER_HZ, startTicks: n(22) };
}

/** The storage counters of /proc/<pid>/io: a process's own, its exited threads' and its reaped children's. */
export interface IoCounters {
  read: number;
  written: number;
  /** Dirty pages dropped before they reached storage (a file truncated or deleted soon after it was written). */
  cancelled: number;
}

/** Parses /proc/<pid>/io; undefined when it is not one. */
export function parseIoCounters(text: string): IoCounters | undefined {
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(text);
  const [read, written, cancelled] = ['read_bytes', 'write_bytes', 'cancelled_write_bytes'].map(field);
  if (!read || !written) return undefined;
  return { read: Number(read[1]), written: Number(written[1]), cancelled: cancelled ? Number(cancelled[1]) : 0 };
}

/** Bytes a process (with its reaped children) caused to be read from and written to storage, from /proc/<pid>/io. */
export function parseProcIo(text: string): number | undefined {
  const io = parseIoCounters(text);
  return io && io.read + io.written;
}

/** The part of /proc that the counters read; a fake in unit tests. */
export interface ProcReader {
  /** Contents of a file under /proc, or undefined when it cannot be read (the process is gone). */
  read(path: string): string | undefined;
  /** Names in /proc (`path` ''), or in a directory under it ("123/task"). */
  list(path?: string): string[];
}

export const realProc: ProcReader = {
  read(p) {
    try {
      return fs.readFileSync(`/proc/${p}`, 'utf8');
    } catch {
      return undefined;
    }
  },
  list(p = '') {
    try {
      return fs.readdirSync(`/proc/${p}`);
    } catch {
      return [];
    }
  },
};

/**
 * The live (not zombie) members of process group `pgid`, except `exempt` (the watchdog): the pids whose
 * /proc/<pid>/stat names that group.
 */
export function groupMembers(pgid: number, exempt: number | undefined, proc: ProcReader = realProc): number[] {
  const members: number[] = [];
  for (const name of proc.list()) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === exempt) continue;
    const text = proc.read(`${pid}/stat`);
    const stat = text === undefined ? undefined : parseProcStat(text);
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') members.push(pid);
  }
  return members;
}

/**
 * The members of one process group, found again at every call as cheaply as /proc allows: a process's
 * group is read once, when it is first seen, and remembered until it exits, so that a call costs one
 * listing of /proc plus the stat of each process new since the last one.
 */
export class GroupMembers {
  private readonly groupOf = new Map<number, number>();

  /** `exempt()` is a process to leave out (the watchdog), read at every call. */
  constructor(
    private readonly pgid: number,
    private readonly exempt: () => number | undefined,
    private readonly proc: ProcReader = realProc,
  ) {}

  list(): number[] {
    const live = new Set<number>();
    for (const name of this.proc.list()) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      live.add(pid);
      if (this.groupOf.has(pid)) continue;
      const text = this.proc.read(`${pid}/stat`);
      const stat = text === undefined ? undefined : parseProcStat(text);
      if (stat) this.groupOf.set(pid, stat.pgrp);
    }
    const exempt = this.exempt();
    const members: number[] = [];
    for (const [pid, pgrp] of this.groupOf) {
      if (!live.has(pid)) this.groupOf.delete(pid);
      else if (pgrp === this.pgid && pid !== exempt) members.push(pid);
    }
    return members;
  }
}

interface Seen {
  startTicks: number;
  ppid: number;
  cpuSeconds: number;
  ioBytes: number;
}

/** Counters for a changing set of processes: each sample() adds what the members used since the last. */
export class ProcessUsage {
  private readonly seen = new Map<number, Seen>();
  private readonly total: Usage = { cpuSeconds: 0, ioBytes: 0 };

  /** `members()` lists the pids to count now. */
  constructor(
    private readonly members: () => number[],
    private readonly proc: ProcReader = realProc,
  ) {}

  /**
   * Reads the members' counters and returns their usage so far. The processes are the backup's own from
   * their start, so a process seen for the first time counts whole.
   */
  sample(): Usage {
    const now = new Map<number, Seen>();
    for (const pid of this.members()) {
      const statText = this.proc.read(`${pid}/stat`);
      const stat = statText === undefined ? undefined : parseProcStat(statText);
      if (!stat) continue;
      const ioText = this.proc.read(`${pid}/io`);
      now.set(pid, {
        startTicks: stat.startTicks,
        ppid: stat.ppid,
        cpuSeconds: stat.cpuSeconds,
        ioBytes: (ioText && parseProcIo(ioText)) || 0,
      });
    }
    // What gone members had shown is in their parents' counters now, if a member reaped them.
    const reaped = new Map<number, { cpuSeconds: number; ioBytes: number }>();
    for (const [pid, old] of this.seen) {
      const still = now.get(pid);
      if (still && still.startTicks === old.startTicks) continue;
      const r = reaped.get(old.ppid) ?? { cpuSeconds: 0, ioBytes: 0 };
      r.cpuSeconds += old.cpuSeconds;
      r.ioBytes += old.ioBytes;
      reaped.set(old.ppid, r);
    }
    for (const [pid, cur] of now) {
      const old = this.seen.get(pid);
      const base = old !== undefined && old.startTicks === cur.startTicks ? old : { cpuSeconds: 0, ioBytes: 0 };
      const r = reaped.get(pid) ?? { cpuSeconds: 0, ioBytes: 0 };
      this.total.cpuSeconds += Math.max(0, cur.cpuSeconds - base.cpuSeconds - r.cpuSeconds);
      this.total.ioBytes += Math.max(0, cur.ioBytes - base.ioBytes - r.ioBytes);
    }
    this.seen.clear();
    for (const [pid, s] of now) this.seen.set(pid, s);
    return { ...this.total };
  }
}

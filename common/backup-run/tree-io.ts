/**
 * What a backup command's process tree read from and wrote to storage, for the release outcome: the
 * kernel's I/O accounting (/proc/<pid>/io) summed over the command's process group, sampled while it runs
 * and once more when it has ended.
 *
 * Which counters: write_bytes less cancelled_write_bytes is what reached (or will reach) storage; wchar
 * would count every write() instead, pipes between the tree's own processes twice (tar | gzip) and the
 * terminal too, so it says nothing about the backup. A backup sent over the network writes ~0 to storage:
 * the figure is what it wrote to this machine's disks, no more.
 *
 * The leader's last moments: the command leads its group and is our own child, so Node reaps it as soon as
 * it exits and its /proc entry is gone before we can read it; a command that runs for milliseconds is
 * never seen at all. The kernel then adds its final counters (with those of the children it reaped) to
 * ours. So what our own counters grew by across the sample that saw it go, less what we had already
 * counted of it, is what it did since: exact when we did no storage I/O of our own meanwhile and reaped no
 * other child. Processes the tree left behind that are reaped by others (orphans) are counted up to the
 * last sample that saw them.
 */
import { type IoCounters, type ProcReader, parseIoCounters, parseProcStat, realProc } from './budget/process-usage';

/** Bytes read from and written to storage. */
export interface TreeIo {
  read: number;
  written: number;
}

interface Seen {
  startTicks: number;
  ppid: number;
  io: IoCounters;
}

const ZERO: IoCounters = { read: 0, written: 0, cancelled: 0 };

export class TreeIoMeter {
  private readonly seen = new Map<number, Seen>();
  private readonly total: TreeIo = { read: 0, written: 0 };
  private own: IoCounters | undefined;

  /**
   * Call right after spawning `leader`, before it can have exited: it is counted from zero as our child.
   * `members()` lists the tree's live processes (the leader's group, less its watchdog).
   */
  constructor(
    leader: number,
    private readonly members: () => number[],
    private readonly proc: ProcReader = realProc,
    private readonly self: number = process.pid,
  ) {
    this.own = this.counters(self);
    this.seen.set(leader, { startTicks: -1, ppid: self, io: ZERO });
  }

  /** Adds what the tree did since the last sample. */
  sample(): void {
    const now = new Map<number, Seen>();
    for (const pid of this.members()) {
      const text = this.proc.read(`${pid}/stat`);
      const stat = text === undefined ? undefined : parseProcStat(text);
      const io = this.counters(pid);
      if (stat && io) now.set(pid, { startTicks: stat.startTicks, ppid: stat.ppid, io });
    }
    const own = this.counters(this.self);
    // What gone members had shown is in their parents' counters now, if a member (or we) reaped them.
    const reaped = new Map<number, IoCounters>();
    for (const [pid, old] of this.seen) {
      const still = now.get(pid);
      if (still && (old.startTicks === -1 || still.startTicks === old.startTicks)) continue;
      reaped.set(old.ppid, add(reaped.get(old.ppid) ?? ZERO, old.io));
    }
    for (const [pid, cur] of now) {
      const old = this.seen.get(pid);
      const base = old && (old.startTicks === -1 || old.startTicks === cur.startTicks) ? old.io : ZERO;
      this.count(cur.io, add(base, reaped.get(pid) ?? ZERO));
    }
    const ours = reaped.get(this.self);
    if (ours && own && this.own) this.count(own, add(this.own, ours));
    this.own = own;
    this.seen.clear();
    for (const [pid, s] of now) this.seen.set(pid, s);
  }

  /** The totals so far; undefined when this kernel's I/O accounting cannot be read (then nothing is known). */
  result(): TreeIo | undefined {
    return this.own && { ...this.total };
  }

  private counters(pid: number): IoCounters | undefined {
    const text = this.proc.read(`${pid}/io`);
    return text === undefined ? undefined : parseIoCounters(text);
  }

  /** Adds `cur` less `base`: never negative, since a parent's increase cannot be less than what it reaped. */
  private count(cur: IoCounters, base: IoCounters): void {
    this.total.read += Math.max(0, cur.read - base.read);
    this.total.written += Math.max(0, cur.written - cur.cancelled - (base.written - base.cancelled));
  }
}

function add(a: IoCounters, b: IoCounters): IoCounters {
  return { read: a.read + b.read, written: a.written + b.written, cancelled: a.cancelled + b.cancelled };
}

/**
 * What Linux's /proc says about processes and the machine, for benchmarks: resident memory, CPU time,
 * machine-wide CPU use, established TCP connections to a port and the filesystem a path lives on.
 * Linux only; every reader returns undefined (or 0) when /proc cannot tell.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const CLOCK_TICKS_PER_SEC = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Resident set size in bytes (VmRSS), or undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU time the process has used, in ms, or undefined once it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return (ticks * 1000) / CLOCK_TICKS_PER_SEC;
  } catch {
    return undefined;
  }
}

/** Machine-wide CPU time counters in ms, summed over cores: busy (all but idle and iowait), iowait, total. */
export function machineCpuMs(): { busy: number; iowait: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  const total = v.reduce((a, b) => a + b, 0);
  const toMs = (ticks: number) => (ticks * 1000) / CLOCK_TICKS_PER_SEC;
  return { busy: toMs(total - v[3] - v[4]), iowait: toMs(v[4]), total: toMs(total) };
}

/** Established TCP connections whose local port is `port` (the server side), from /proc/net/tcp{,6}. */
export function establishedToPort(port: number): number {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const localPort = parseInt(cols[1].split(':')[1], 16);
      if (localPort === port && cols[3] === '01') count++; // 01 = ESTABLISHED
    }
  }
  return count;
}

/** Open file descriptors of a process. */
export function openFds(pid: number): number | undefined {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** The mount a path lives on: device, filesystem type and mount point (longest matching prefix). */
export function filesystemOf(p: string): { device: string; type: string; mountPoint: string } | undefined {
  try {
    const real = fs.realpathSync(p);
    let best: { device: string; type: string; mountPoint: string } | undefined;
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [device, mountPoint, type] = line.split(' ');
      if (!mountPoint) continue;
      const inside = real === mountPoint || real.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
      if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { device, type, mountPoint };
    }
    return best;
  } catch {
    return undefined;
  }
}

export interface ResourceWindow {
  /** CPU used per second of wall time, in % of one core (200% = two cores busy). */
  cpuPercent: number;
  rssPeakBytes: number;
  rssEndBytes: number;
}

/**
 * Samples a process's RSS every `intervalMs` (peak and last seen) and its CPU time between mark() and
 * stop(), so a phase's warm-up can count for memory but not for CPU use.
 */
export class ProcessSampler {
  private timer: NodeJS.Timeout;
  private peak = 0;
  private last = 0;
  private from?: { wallMs: number; cpuMs: number };
  readonly samples: { atMs: number; rssBytes: number }[] = [];

  constructor(
    private readonly pid: number,
    intervalMs = 500,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Starts the CPU measurement window. */
  mark(): void {
    this.from = { wallMs: performance.now(), cpuMs: cpuMs(this.pid) ?? 0 };
  }

  /** CPU % since mark(), without stopping. */
  cpuSinceMark(): number {
    if (!this.from) return 0;
    const wall = performance.now() - this.from.wallMs;
    return wall > 0 ? (100 * ((cpuMs(this.pid) ?? this.from.cpuMs) - this.from.cpuMs)) / wall : 0;
  }

  stop(cpuPercent = this.cpuSinceMark()): ResourceWindow {
    clearInterval(this.timer);
    this.sample();
    return { cpuPercent, rssPeakBytes: this.peak, rssEndBytes: this.last };
  }

  private sample(): void {
    const rss = rssBytes(this.pid);
    if (rss === undefined) return;
    this.last = rss;
    this.peak = Math.max(this.peak, rss);
    this.samples.push({ atMs: Date.now(), rssBytes: rss });
  }
}

/** Resolves the directory that holds `file`, creating it. */
export function ensureDirFor(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
}

/**
 * Drops a file's pages from the page cache (written back first), so that the next reader gets it from
 * disk, as after a boot. Returns false when dd (coreutils) could not do it.
 */
export function evictFromPageCache(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
    return true;
  } catch {
    return false;
  }
}

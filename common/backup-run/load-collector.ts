/**
 * Samples a machine's load as a LoadReport (the guest's in the agent, the host's in the coordinator): CPU %,
 * memory, disk and network throughput, load averages, and the share of CPU and I/O that Headroom's own
 * backups took (so that the coordinator can tell the VM's own work from the backup's), and what the machine's
 * work suffers: pressure stall information (pressure-stall.ts) and disk latency (disk-latency.ts). Sampling must be
 * cheap and must never disturb the machine, so it only reads files under /proc and /sys and never starts a
 * process.
 *
 * What we take from systeminformation, and what we do not (checked in systeminformation 5.x lib/*.js):
 * - `mem()` on Linux only reads /proc/meminfo: used as is.
 * - `currentLoad()` runs `execSync('cat /proc/stat | grep cpu')` (a shell per sample): we read /proc/stat.
 * - `fsStats()` and `disksIO()` run `lsblk` through a shell (and `cat /proc/diskstats`): we read
 *   /proc/diskstats and pick whole disks from /sys/block.
 * - `networkStats()` runs `cat /sys/class/net/...` per interface, and `ip route` to find the default
 *   interface: we read /proc/net/dev.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type * as Systeminformation from 'systeminformation';

// Only systeminformation's memory module: the package's index loads all of its modules, about 10 MB of
// resident memory in the agent, for the one function we call.
const si: Pick<typeof Systeminformation, 'mem'> = require('systeminformation/lib/memory');
import type { v1 } from '../../proto';
import type { Usage } from './budget/process-usage';
import type { Clock } from '../util/clock';
import { type DeviceIoTimes, parseDeviceIoTimes, slowestAwaitMs } from './disk-latency';
import { type PressureStall, parsePressureStall } from './pressure-stall';

export interface LoadCollector {
  /** One sample; rates are averaged since the previous call (0 on the first). Never rejects. */
  sample(): Promise<v1.LoadReport>;
}

export interface CpuTimes {
  busy: number;
  total: number;
}

/** How many CPUs /proc/stat lists (its cpu0, cpu1, ... lines): what its aggregate line sums over. */
export function countProcStatCpus(text: string): number {
  return text.split('\n').filter((l) => /^cpu\d+ /.test(l)).length;
}

/** The aggregate `cpu` line of /proc/stat. Steal counts as busy: in a guest it is time the host took from us. */
export function parseProcStatCpu(text: string): CpuTimes | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 4 || v.some((n) => !Number.isFinite(n))) return undefined;
  const total = v.reduce((a, b) => a + b, 0);
  const idle = v[3] + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export interface ByteCounters {
  a: number;
  b: number;
}

/**
 * Bytes read (a) and written (b) by the devices `include` accepts, from /proc/diskstats. Sectors there are
 * always 512 bytes, whatever the device's sector size.
 */
export function parseDiskstats(text: string, include: (device: string) => boolean): ByteCounters {
  let a = 0;
  let b = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !include(f[2])) continue;
    a += Number(f[5]) * 512;
    b += Number(f[9]) * 512;
  }
  return { a, b };
}

/** Bytes received (a) and sent (b) by the interfaces `include` accepts, from /proc/net/dev. */
export function parseNetDev(text: string, include: (iface: string) => boolean): ByteCounters {
  let a = 0;
  let b = 0;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (f.length < 9 || !include(name)) continue;
    a += Number(f[0]);
    b += Number(f[8]);
  }
  return { a, b };
}

export interface FileSystemView {
  readFile(path: string): string;
  readdir(path: string): string[];
  exists(path: string): boolean;
}

const realFs: FileSystemView = {
  readFile: (p) => fs.readFileSync(p, 'utf8'),
  readdir: (p) => fs.readdirSync(p),
  exists: (p) => fs.existsSync(p),
};

/**
 * Whole physical (or paravirtual) disks: the entries of /sys/block that have a `device` link. Partitions
 * are not in /sys/block, and loop, dm-*, md*, zram have no device link: counting them would count the
 * same bytes twice.
 */
export function physicalDisks(view: FileSystemView): Set<string> {
  try {
    return new Set(view.readdir('/sys/block').filter((d) => view.exists(`/sys/block/${d}/device`)));
  } catch {
    return new Set();
  }
}

/**
 * Interfaces backed by a device (virtio, e1000, …), which excludes lo, bridges and veth pairs whose traffic
 * is already counted on the real NIC. When there is none (a container whose eth0 is a veth), every
 * interface but lo.
 */
export function physicalInterfaces(view: FileSystemView): (iface: string) => boolean {
  let withDevice: string[] = [];
  try {
    withDevice = view.readdir('/sys/class/net').filter((i) => view.exists(`/sys/class/net/${i}/device`));
  } catch {
    // no sysfs: fall through
  }
  if (withDevice.length > 0) {
    const set = new Set(withDevice);
    return (i) => set.has(i);
  }
  return (i) => i !== 'lo';
}

/** A report's figures of what the machine waits for, as plain numbers: what the budget controller reads. */
export function waitFigures(r: v1.LoadReport) {
  const psi = (p: v1.PressureStall | null | undefined) =>
    p ? { someAvg10: Number(p.someAvg10 ?? 0), fullAvg10: Number(p.fullAvg10 ?? 0) } : undefined;
  return {
    cpuPressure: psi(r.cpuPressure),
    ioPressure: psi(r.ioPressure),
    memoryPressure: psi(r.memoryPressure),
    diskAwaitMs: r.diskAwaitMs === undefined || r.diskAwaitMs === null ? undefined : Number(r.diskAwaitMs),
  };
}

interface Counters {
  at: number;
  cpu?: CpuTimes;
  cpuCount: number;
  backup?: Usage;
  disk?: ByteCounters;
  /** Per physical disk; undefined without /proc/diskstats or without a physical disk. */
  diskTimes?: Map<string, DeviceIoTimes>;
  net?: ByteCounters;
}

const PSI_RESOURCES = ['cpu', 'io', 'memory'] as const;

/** PSI as the report carries it: unset where missing, with why (the first file that failed). */
function readPressure(read: (path: string) => string): Partial<v1.LoadReport> {
  const out: Partial<v1.LoadReport> = {};
  for (const r of PSI_RESOURCES) {
    const path = `/proc/pressure/${r}`;
    let p: PressureStall;
    try {
      // A kernel built without PSI has no such file (ENOENT); one booted with psi=0 fails the read (EOPNOTSUPP).
      p = parsePressureStall(read(path));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { pressureMissing: `${path}: ${e.code ?? e.message}` };
    }
    out[`${r}Pressure`] = {
      someAvg10: p.some.avg10,
      someAvg60: p.some.avg60,
      fullAvg10: p.full?.avg10 ?? 0,
      fullAvg60: p.full?.avg60 ?? 0,
    };
  }
  return out;
}

export interface SystemLoadCollectorOptions {
  /** Monotonic clock for rates; its readings are also the samples' timestamps. */
  clock: Clock;
  fs?: FileSystemView;
  /** Memory used and total, bytes; systeminformation's mem() by default. */
  memory?: () => Promise<{ usedBytes: number; totalBytes: number }>;
  loadavg?: () => number[];
  /** What the backups run under Headroom have used so far (budget/backup-usage.ts); none by default. */
  backupUsage?: () => Usage;
  /**
   * The workload's PSI apart from the backups' (workload-pressure.ts), or undefined when it cannot be told
   * apart this time; /proc/pressure then, and by default.
   */
  workloadPressure?: () => Partial<v1.LoadReport> | undefined;
}

/** systeminformation's mem(): "used" is total minus *available*, so page cache does not count as used. */
async function siMemory(): Promise<{ usedBytes: number; totalBytes: number }> {
  const m = await si.mem();
  return { usedBytes: Math.max(0, m.total - m.available), totalBytes: m.total };
}

/** The real collector, for Linux guests; elsewhere CPU comes from os.cpus() and disk/network read as 0. */
export class SystemLoadCollector implements LoadCollector {
  private previous?: Counters;
  private readonly fs: FileSystemView;
  private readonly memory: () => Promise<{ usedBytes: number; totalBytes: number }>;
  private readonly loadavg: () => number[];

  constructor(private readonly options: SystemLoadCollectorOptions) {
    this.fs = options.fs ?? realFs;
    this.memory = options.memory ?? siMemory;
    this.loadavg = options.loadavg ?? os.loadavg;
  }

  /** Takes the baseline that the first report's rates are measured from. */
  prime(): void {
    this.previous = this.counters();
  }

  async sample(): Promise<v1.LoadReport> {
    const now = this.counters();
    const prev = this.previous;
    this.previous = now;
    let mem = { usedBytes: 0, totalBytes: os.totalmem() };
    try {
      mem = await this.memory();
    } catch {
      // keep the fallback: a report without memory beats no report
    }
    const [load1, load5, load15] = this.loadavg();
    const seconds = prev ? (now.at - prev.at) / 1_000 : 0;
    const rate = (cur?: number, old?: number) =>
      seconds > 0 && cur !== undefined && old !== undefined ? Math.max(0, (cur - old) / seconds) : 0;
    let cpuPercent = 0;
    if (prev?.cpu && now.cpu && now.cpu.total > prev.cpu.total) {
      cpuPercent = (100 * (now.cpu.busy - prev.cpu.busy)) / (now.cpu.total - prev.cpu.total);
    }
    // Of all cores, as cpuPercent is.
    const backupCpuPercent = (100 * rate(now.backup?.cpuSeconds, prev?.backup?.cpuSeconds)) / now.cpuCount;
    return {
      sampledUnixMs: now.at,
      cpuPercent: Math.min(100, Math.max(0, cpuPercent)),
      memUsedBytes: mem.usedBytes,
      memTotalBytes: mem.totalBytes,
      diskReadBytesPerSec: rate(now.disk?.a, prev?.disk?.a),
      diskWriteBytesPerSec: rate(now.disk?.b, prev?.disk?.b),
      netRxBytesPerSec: rate(now.net?.a, prev?.net?.a),
      netTxBytesPerSec: rate(now.net?.b, prev?.net?.b),
      load1,
      load5,
      load15,
      backupCpuPercent: Math.min(100, backupCpuPercent),
      backupIoBytesPerSec: rate(now.backup?.ioBytes, prev?.backup?.ioBytes),
      ...(this.options.workloadPressure?.() ?? readPressure((p) => this.fs.readFile(p))),
      ...(prev?.diskTimes && now.diskTimes ? { diskAwaitMs: slowestAwaitMs(prev.diskTimes, now.diskTimes) } : {}),
    };
  }

  private counters(): Counters {
    const c: Counters = { at: this.options.clock.now(), cpuCount: 1, backup: this.options.backupUsage?.() };
    const read = (p: string) => {
      try {
        return this.fs.readFile(p);
      } catch {
        return undefined;
      }
    };
    const stat = read('/proc/stat');
    c.cpu = stat !== undefined ? parseProcStatCpu(stat) : undefined;
    c.cpuCount = (stat !== undefined && countProcStatCpus(stat)) || os.availableParallelism();
    if (!c.cpu) {
      const times = os.cpus().map((x) => x.times);
      const total = times.reduce((a, t) => a + t.user + t.nice + t.sys + t.idle + t.irq, 0);
      c.cpu = { busy: total - times.reduce((a, t) => a + t.idle, 0), total };
    }
    const diskstats = read('/proc/diskstats');
    if (diskstats !== undefined) {
      const disks = physicalDisks(this.fs);
      c.disk = parseDiskstats(diskstats, (d) => disks.has(d));
      try {
        if (disks.size > 0) c.diskTimes = parseDeviceIoTimes(diskstats, (d) => disks.has(d));
      } catch {
        // a line we cannot read: no latency this time rather than a wrong one
      }
    }
    const netdev = read('/proc/net/dev');
    if (netdev !== undefined) c.net = parseNetDev(netdev, physicalInterfaces(this.fs));
    return c;
  }
}

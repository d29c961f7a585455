/**
 * The storm benchmark's simulated host: VMs with the guest backups people run on cron (a nightly
 * restic/borg at 01:00, 02:00 or 03:00, a database dump, hourly small jobs) and a nightly hypervisor
 * backup of every VM, drawn from a seeded PRNG so every run plans the same day.
 */
import type { PlanHost, PlanJob } from '../coordinator/planner/types';

const MIN = 60_000;
const HOUR = 60 * MIN;
const MB = 1_000_000;

/** Midnight of the simulated night; the planned day runs from noon before it to noon after it. */
export const MIDNIGHT = Date.UTC(2026, 10, 26);
export const PLAN_NOW = MIDNIGHT - 12 * HOUR;

/** mulberry32: small, fast, and good enough to draw a scenario. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ScenarioJob extends PlanJob {
  /** What it stands for, for the report: 'hypervisor', 'files', 'database', 'hourly'. */
  type: 'hypervisor' | 'files' | 'database' | 'hourly';
}

export interface Scenario {
  vms: number;
  host: PlanHost;
  jobs: ScenarioJob[];
}

/** The backup I/O budget per 50 VMs unless `--budget` says otherwise, MB/s. */
export const DEFAULT_BUDGET_MB = 500;

/**
 * The host for `vms` VMs: per 50 VMs, 8 guest and 2 hypervisor backups at once and a backup budget of
 * `budgetMb` MB/s and 8 cores (of a host whose disks do about 1.2 GB/s: see DISK_BYTES_PER_SEC_PER_50_VMS).
 */
export function scenario(vms: number, seed: number, budgetMb = DEFAULT_BUDGET_MB): Scenario {
  const random = seededRandom(seed);
  const between = (lo: number, hi: number) => lo + (hi - lo) * random();
  const pick = <T>(weighted: [T, number][]): T => {
    let r = random() * weighted.reduce((sum, [, w]) => sum + w, 0);
    for (const [value, w] of weighted) if ((r -= w) < 0) return value;
    return weighted[weighted.length - 1][0];
  };
  const jobs: ScenarioJob[] = [];
  const add = (
    type: ScenarioJob['type'],
    vm: string,
    cronAt: number,
    windowMs: number,
    durationMs: number,
    io: number,
    cpu: number,
  ) => {
    jobs.push({
      id: `${vm}/${type}@${new Date(cronAt).toISOString().slice(11, 16)}`,
      type,
      kind: type === 'hypervisor' ? 'HYPERVISOR' : 'GUEST',
      vm,
      earliestStart: cronAt,
      windowEnd: cronAt + windowMs,
      durationMs: Math.round(durationMs / 1000) * 1000,
      cost: { ioBytesPerSec: Math.round(io) * MB, cpuPercent: Math.round(cpu) },
      priority: type === 'database' ? 1 : 0,
    });
  };
  for (let v = 0; v < vms; v++) {
    const vm = `vm-${String(v + 1).padStart(String(vms).length, '0')}`;
    // The host's vzdump job: every VM at 22:00, done by 06:00. Snapshot mode reads the disks at up to
    // about 150 MB/s and compresses with zstd on one core.
    add('hypervisor', vm, MIDNIGHT - 2 * HOUR, 8 * HOUR, between(4, 12) * MIN, between(100, 150), 100);
    // restic/borg of the file system: most at 01:00, as the tutorials say; mostly short, a few long.
    const filesAt = pick([
      [1, 5],
      [2, 3],
      [3, 2],
    ]);
    const filesMs = (10 + 110 * random() ** 3) * MIN;
    add('files', vm, MIDNIGHT + filesAt * HOUR, between(4, 8) * HOUR, filesMs, between(20, 60), between(50, 100));
    if (random() < 0.4) {
      add(
        'database',
        vm,
        MIDNIGHT +
          pick([
            [0.5, 1],
            [1, 1],
          ]) *
            HOUR,
        4 * HOUR,
        between(10, 40) * MIN,
        between(30, 60),
        100,
      );
    }
    if (random() < 0.3) {
      const minute = pick([
        [0, 2],
        [15, 1],
        [30, 1],
      ]);
      const durationMs = between(2, 6) * MIN;
      for (let h = 12; h < 36; h++) {
        add('hourly', vm, MIDNIGHT - 24 * HOUR + h * HOUR + minute * MIN, HOUR, durationMs, between(10, 20), 25);
      }
    }
  }
  const scale = vms / 50;
  return {
    vms,
    host: {
      maxGuestTokens: Math.round(8 * scale),
      maxHypervisorTokens: Math.max(1, Math.round(2 * scale)),
      budget: { ioBytesPerSec: Math.round(budgetMb * scale) * MB, cpuPercent: Math.round(800 * scale) },
      minStartGapMs: Math.round(30_000 / scale),
    },
    jobs,
  };
}

/** What the host's disks deliver in all, per 50 VMs: what uncoordinated backups share when they ask for more. */
export const DISK_BYTES_PER_SEC_PER_50_VMS = 1_200 * MB;

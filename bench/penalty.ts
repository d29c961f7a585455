/**
 * `npm run bench:penalty`: what a backup costs the workload next to it, with real processes. A foreground
 * (an HTTP server under a steady open-loop request rate, a disk-latency probe, and a reader of a working
 * set whose page-cache hit rate shows eviction) runs through the phases:
 *
 *   0. baseline: no backup;
 *   a. a backup-like job (tar | gzip of a generated data set read from disk, written to a file) unthrottled;
 *   b. the same job run by a real headroom-agent against a real coordinator: under its token's budget,
 *      throttled and paused by the coordinator as the foreground's pressure rises.
 *
 * Twice: on this machine (the host run), and inside a TCG guest with cgroup v2 (penalty-guest.ts), which
 * adds phases under fixed budgets and runs (b) with the adaptive budget. Reports p99 inflation against the
 * baseline, the hit rate in points, the backup's duration against the unthrottled one, the targets and the
 * frontier (penalty-report.ts). Prints figures; never fails on them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDuration } from '../common/util/duration';
import { tempDir } from '../test/helpers/coordinator-process';
import { ensureDirFor, evictFromPageCache } from './proc-stats';
import { runUnderHeadroom } from './penalty-headroom';
import {
  backupCommand,
  DATA_FILE_BYTES,
  type Foreground,
  generateDataSet,
  measure,
  runToEnd,
  startForegrounds,
} from './penalty-measure';
import { type Phase, type PhaseKind, renderPenaltyReport } from './penalty-report';
import { budgetText, type GuestBudget, runGuestPenalty } from './penalty-guest';

const MiB = 1024 * 1024;

export interface PenaltyOptions {
  /** Size of the data set the backup reads. Default 2 GiB. */
  dataBytes: number;
  /** Foreground requests per second. Default 100. */
  ratePerSec: number;
  /** Length of the baseline phase, ms. Default 20 s. */
  baselineMs: number;
  /** The host run's fixed budgets, lowest first; Headroom adapts between the first and the last. */
  fixed: GuestBudget[];
  /** The working set the foreground rereads, MiB. Default 256 on the host, 160 in the guest. */
  worksetMiB: number;
  /** Which runs: both by default. */
  host: boolean;
  guest: boolean;
  /** The in-guest run's data set, guest RAM and fixed budgets. */
  guestDataBytes: number;
  guestWorksetMiB: number;
  guestMemoryMiB: number;
  guestBaselineMs: number;
  guestRatePerSec: number;
  guestFixed: GuestBudget[];
  guestNice: number;
  guestDiskDir: string;
}

const USAGE = `Usage: npm run bench:penalty -- [options]
  --size BYTES         data set the backup reads, e.g. 2GiB, 512MiB (default 2GiB)
  --rate N             foreground HTTP requests per second (default 100)
  --baseline DURATION  length of the no-backup phase (default 20s)
  --fixed LIST         the host run's fixed budgets, CPU%/MiB/s each, lowest first (default 25/20,50/40,100/80);
                       Headroom adapts between the first and the last
  --workset MIB        the working set the foreground rereads on the host (default 256)
  --host-only          only the run on this machine
  --guest-only         only the run inside a TCG guest with cgroup v2 (needs the VM harness's packages)
  --guest-size BYTES   the guest's data set (default 128MiB)
  --guest-workset MIB  the guest's working set (default 128)
  --guest-memory MIB   the guest's RAM (default 768)
  --guest-baseline D   length of the guest's no-backup phase (default 30s)
  --guest-rate N       the guest's HTTP requests per second (default 10: TCG is slow; the guest is about half busy)
  --guest-fixed LIST   the guest's fixed budgets, CPU%/MiB/s each, lowest first (default 20/2,40/4,80/8)
  --guest-disk-dir DIR where the guest's data disk (qcow2) is made (default /dev/shm: the host's own disk
                       traffic then does not stall the guest's I/O emulation; give a directory on a
                       disk to include it)
  --guest-nice N       QEMU's threads at this nice value, -20..19 (default -10: the host's other work
                       weighs less on the guest's one vCPU; 0 to leave them as they are)`;

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!m) throw new Error(`--size: expected a size such as 2GiB or 512MiB, got ${text}`);
  const unit = { b: 1, kib: 1024, mib: MiB, gib: 1024 * MiB }[(m[2] ?? 'B').toLowerCase()]!;
  return Math.round(Number(m[1]) * unit);
}

function parseArgs(argv: string[]): PenaltyOptions {
  const o: PenaltyOptions = {
    dataBytes: 2 * 1024 * MiB,
    ratePerSec: 100,
    baselineMs: 20_000,
    fixed: [
      { cpuPercent: 25, ioBytesPerSec: 20 * MiB },
      { cpuPercent: 50, ioBytesPerSec: 40 * MiB },
      { cpuPercent: 100, ioBytesPerSec: 80 * MiB },
    ],
    worksetMiB: 256,
    host: true,
    guest: true,
    guestDataBytes: 128 * MiB,
    guestWorksetMiB: 128,
    guestMemoryMiB: 768,
    guestBaselineMs: 30_000,
    guestRatePerSec: 10,
    guestFixed: [
      { cpuPercent: 20, ioBytesPerSec: 2 * MiB },
      { cpuPercent: 40, ioBytesPerSec: 4 * MiB },
      { cpuPercent: 80, ioBytesPerSec: 8 * MiB },
    ],
    guestNice: -10,
    guestDiskDir: '/dev/shm',
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const need = () => {
      if (value === undefined) throw new Error(`${flag} needs a value`);
      i++;
      return value;
    };
    const positive = (v: string) => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`${flag}: expected a positive number, got ${v}`);
      return n;
    };
    if (flag === '--size') o.dataBytes = parseSize(need());
    else if (flag === '--rate') o.ratePerSec = positive(need());
    else if (flag === '--baseline') o.baselineMs = parseDuration(need());
    else if (flag === '--fixed') o.fixed = parseBudgets(need(), flag);
    else if (flag === '--workset') o.worksetMiB = positive(need());
    else if (flag === '--host-only') o.guest = false;
    else if (flag === '--guest-only') o.host = false;
    else if (flag === '--guest-size') o.guestDataBytes = parseSize(need());
    else if (flag === '--guest-workset') o.guestWorksetMiB = positive(need());
    else if (flag === '--guest-memory') o.guestMemoryMiB = positive(need());
    else if (flag === '--guest-baseline') o.guestBaselineMs = parseDuration(need());
    else if (flag === '--guest-rate') o.guestRatePerSec = positive(need());
    else if (flag === '--guest-fixed') o.guestFixed = parseBudgets(need(), flag);
    else if (flag === '--guest-nice') o.guestNice = niceValue(need());
    else if (flag === '--guest-disk-dir') o.guestDiskDir = need();
    else if (flag === '-h' || flag === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${flag}`);
  }
  for (const [flag, bytes] of [
    ['--size', o.dataBytes],
    ['--guest-size', o.guestDataBytes],
  ] as const)
    if (bytes < DATA_FILE_BYTES) throw new Error(`${flag}: at least ${DATA_FILE_BYTES / MiB} MiB`);
  if (!o.host && !o.guest) throw new Error('--host-only and --guest-only: give one of them, or neither for both');
  return o;
}

function niceValue(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error(`--guest-nice: expected -20..19, got ${text}`);
  return n;
}

/** "20/2,40/4,80/8": CPU% and MiB/s pairs, lowest first. */
function parseBudgets(text: string, flag: string): GuestBudget[] {
  const budgets = text.split(',').map((pair) => {
    const m = /^(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(pair.trim());
    if (!m || !(Number(m[1]) > 0) || !(Number(m[2]) > 0))
      throw new Error(`${flag}: expected CPU%/MiB/s pairs such as 20/2,40/4, got ${text}`);
    return { cpuPercent: Number(m[1]), ioBytesPerSec: Number(m[2]) * MiB };
  });
  return budgets.sort((a, b) => a.ioBytesPerSec - b.ioBytesPerSec);
}

function progress(line: string): void {
  process.stderr.write(`[penalty] ${line}\n`);
}

/** Stops what is running (foreground, coordinator and agent, guest), when the bench is interrupted. */
const stops: Array<() => Promise<void> | void> = [];

/** The run on this machine: phases 0, a and b. */
async function hostRun(o: PenaltyOptions): Promise<{ intro: string[]; phases: Phase[] }> {
  const dir = tempDir('headroom-bench-penalty-');
  stops.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'data');
  const out = path.join(dir, 'backup.tar.gz');
  progress(`host: generating ${(o.dataBytes / MiB).toFixed(0)} MiB of data in ${dataDir}`);
  const files = generateDataSet(dataDir, o.dataBytes);
  const evict = () => {
    for (const file of files) evictFromPageCache(file);
  };
  const foreground: Foreground = await startForegrounds(dir, o.ratePerSec, o.worksetMiB);
  stops.push(() => foreground.stop());
  await new Promise((r) => setTimeout(r, 2_000)); // warm-up: connections open, JIT warm
  const phases: Phase[] = [];
  progress(`host: 0. baseline: ${o.baselineMs / 1000} s without a backup`);
  phases.push({ ...(await measure('0. no backup', foreground, o.baselineMs)), kind: 'baseline' });
  progress('host: a. the backup, unthrottled');
  evict();
  const unthrottled = await measure('a. unthrottled', foreground, async () => ({
    backupSeconds: await runToEnd(backupCommand(dataDir, out)),
    notes: [],
  }));
  phases.push({ ...unthrottled, kind: 'unthrottled' });
  fs.rmSync(out, { force: true });
  const underHeadroom = async (
    kind: PhaseKind,
    name: string,
    options: Parameters<typeof runUnderHeadroom>[0]['options'],
  ) => {
    progress(`host: ${name}`);
    fs.rmSync(out, { force: true });
    evict();
    const result = await measure(name, foreground, () =>
      runUnderHeadroom({
        dir,
        command: backupCommand(dataDir, out),
        options,
        progress,
        onStop: (stop) => stops.push(stop),
      }),
    );
    phases.push({ ...result, kind });
  };
  for (const [i, b] of o.fixed.entries()) await underHeadroom('fixed', `f${i + 1}. fixed ${budgetText(b)}`, b);
  const low = o.fixed[0];
  const high = o.fixed[o.fixed.length - 1];
  await underHeadroom('headroom', 'b. Headroom adaptive', { ...high, adaptiveFrom: low });
  const intro = [
    `host run: ${os.cpus().length} cores, node ${process.version}`,
    `foreground  HTTP server at ${o.ratePerSec} requests/s (open loop; each request hashes 256 KiB and reads a 64 KiB file),`,
    `            a disk probe (4 KiB write + fdatasync every 50 ms), a working set of ${o.worksetMiB} MiB reread at 32 MiB/s`,
    `backup      tar | gzip -1 of ${(o.dataBytes / MiB / 1024).toFixed(1)} GiB read from disk (evicted from the page cache first), written to a file`,
    `fixed       ${o.fixed.map(budgetText).join('; ')}; Headroom adaptive between the first and the last, driven by the product's wait thresholds`,
  ];
  return { intro, phases };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // Each call waits for the ones before it: a signal's cleanup and main's own (its phase failing as the
  // guest goes) must both end before the process exits, or the coordinator is left running.
  let cleaning = Promise.resolve();
  const cleanup = () =>
    (cleaning = cleaning.then(async () => {
      for (const stop of stops.splice(0).reverse()) await stop();
    }));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    const runs: Record<string, { intro: string[]; phases: Phase[] }> = {};
    if (o.host) {
      runs.host = await hostRun(o);
      await cleanup();
    }
    if (o.guest) {
      runs.guest = await runGuestPenalty({
        dataBytes: o.guestDataBytes,
        ratePerSec: o.guestRatePerSec,
        baselineMs: o.guestBaselineMs,
        worksetMiB: o.guestWorksetMiB,
        memoryMiB: o.guestMemoryMiB,
        fixed: o.guestFixed,
        nice: o.guestNice,
        diskDir: o.guestDiskDir,
        progress,
        onStop: (stop) => stops.push(stop),
      });
    }
    const text = Object.values(runs)
      .map((r) => renderPenaltyReport(r.intro, r.phases))
      .join('\n\n');
    const json = path.resolve(__dirname, '..', '..', '.bench', 'penalty.json');
    ensureDirFor(json);
    fs.writeFileSync(json, `${JSON.stringify({ options: o, runs }, null, 2)}\n`);
    process.stdout.write(
      `\nHeadroom penalty benchmark\n\n${text}\nJSON results: ${path.relative(process.cwd(), json)}\n`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:penalty failed: ${(e as Error).message}\n`);
  process.exit(1);
});

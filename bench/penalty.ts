/**
 * `npm run bench:penalty`: what a backup costs the workload next to it, with real processes on this
 * machine. A foreground (an HTTP server under a steady open-loop request rate, and a disk-latency probe)
 * runs through three phases:
 *
 *   0. baseline: no backup;
 *   a. a backup-like job (tar | gzip of a generated data set read from disk, written to a file) unthrottled;
 *   b. the same job run by a real headroom-agent against a real coordinator: under its token's budget,
 *      throttled and paused by the coordinator as the foreground load rises.
 *
 * Reports the foreground's p50/p99 latency in each phase against the baseline, and the backup's duration.
 * Prints figures; never fails on them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDuration } from '../common/util/duration';
import { tempDir } from '../test/helpers/coordinator-process';
import { type LatencySummary, OpenLoopLoad, summarise } from './penalty-load';
import { ensureDirFor, evictFromPageCache, machineCpuMs } from './proc-stats';
import { runUnderHeadroom } from './penalty-headroom';

const MiB = 1024 * 1024;
const FILE_BYTES = 64 * MiB;

export interface PenaltyOptions {
  /** Size of the data set the backup reads. Default 2 GiB. */
  dataBytes: number;
  /** Foreground requests per second. Default 100. */
  ratePerSec: number;
  /** Length of the baseline phase, ms. Default 20 s. */
  baselineMs: number;
  /** The budget Headroom gives the backup: share of one core (%) and bytes/s. */
  cpuPercent: number;
  ioBytesPerSec: number;
}

const USAGE = `Usage: npm run bench:penalty -- [options]
  --size BYTES         data set the backup reads, e.g. 2GiB, 512MiB (default 2GiB)
  --rate N             foreground HTTP requests per second (default 100)
  --baseline DURATION  length of the no-backup phase (default 20s)
  --cpu-percent N      the backup's CPU budget under Headroom, % of one core (default 25)
  --io-mibps N         the backup's I/O budget under Headroom, MiB/s (default 20)`;

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
    cpuPercent: 25,
    ioBytesPerSec: 20 * MiB,
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
    else if (flag === '--cpu-percent') o.cpuPercent = positive(need());
    else if (flag === '--io-mibps') o.ioBytesPerSec = positive(need()) * MiB;
    else if (flag === '-h' || flag === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${flag}`);
  }
  if (o.dataBytes < FILE_BYTES) throw new Error(`--size: at least ${FILE_BYTES / MiB} MiB`);
  return o;
}

function progress(line: string): void {
  process.stderr.write(`[penalty] ${line}\n`);
}

/** Half random, half zeros per MiB: gzip has real work to do and shrinks it about by half, like real data. */
function generateDataSet(dir: string, bytes: number): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const zeros = Buffer.alloc(MiB / 2);
  for (let i = 0; i * FILE_BYTES < bytes; i++) {
    const file = path.join(dir, `part-${String(i).padStart(4, '0')}.bin`);
    const fd = fs.openSync(file, 'w');
    for (let off = 0; off < FILE_BYTES; off += MiB) {
      fs.writeSync(fd, randomBytes(MiB / 2));
      fs.writeSync(fd, zeros);
    }
    fs.closeSync(fd);
    files.push(file);
  }
  return files;
}

/** Starts a foreground process and waits for its first line. */
function startForeground(
  mode: 'http' | 'disk',
  dir: string,
): Promise<{ child: ChildProcess; firstLine: string; lines: string[] }> {
  const child = spawn(process.execPath, [path.join(__dirname, 'penalty-foreground.js'), mode, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buffered = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        lines.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        if (lines.length === 1) resolve({ child, firstLine: lines[0], lines });
      }
    });
    child.once('exit', (code) => reject(new Error(`the ${mode} foreground exited with ${code}`)));
  });
}

interface Foreground {
  /** Latencies of both probes since the last call. */
  take(): Promise<{ http: number[]; httpErrors: number; disk: number[] }>;
  stop(): void;
}

async function startForegrounds(dir: string, ratePerSec: number): Promise<Foreground> {
  const http = await startForeground('http', dir);
  const disk = await startForeground('disk', dir);
  const load = new OpenLoopLoad(Number(/listening on (\d+)/.exec(http.firstLine)![1]), ratePerSec);
  load.start();
  return {
    async take() {
      const seen = disk.lines.length;
      disk.child.kill('SIGUSR2');
      while (disk.lines.length === seen) await new Promise((r) => setTimeout(r, 10));
      const { latenciesMs, errors } = load.take();
      return { http: latenciesMs, httpErrors: errors, disk: JSON.parse(disk.lines[disk.lines.length - 1]) as number[] };
    },
    stop() {
      load.stop();
      http.child.kill('SIGTERM');
      disk.child.kill('SIGTERM');
    },
  };
}

/** The backup: everything under `dataDir`, tar'd and gzip'd into `out`. */
function backupCommand(dataDir: string, out: string): string[] {
  return ['sh', '-c', 'tar -C "$1" -cf - . | gzip -1 > "$2"', 'backup', dataDir, out];
}

interface PhaseResult {
  name: string;
  http: LatencySummary;
  httpErrors: number;
  disk: LatencySummary;
  backupSeconds?: number;
  machineBusyPercent: number;
  notes: string[];
}

/** Measures the foreground while `during` runs (or for a fixed time when it is a number of ms). */
async function measure(
  name: string,
  foreground: Foreground,
  during: number | (() => Promise<{ backupSeconds: number; notes: string[] }>),
): Promise<PhaseResult> {
  await foreground.take(); // drop what came before this phase
  const cpu0 = machineCpuMs();
  let backupSeconds: number | undefined;
  let notes: string[] = [];
  if (typeof during === 'number') await new Promise((r) => setTimeout(r, during));
  else ({ backupSeconds, notes } = await during());
  const cpu1 = machineCpuMs();
  const taken = await foreground.take();
  return {
    name,
    http: summarise(taken.http),
    httpErrors: taken.httpErrors,
    disk: summarise(taken.disk),
    backupSeconds,
    machineBusyPercent: (100 * (cpu1.busy - cpu0.busy)) / Math.max(1, cpu1.total - cpu0.total),
    notes,
  };
}

/** Runs a command to its end; resolves with its duration in seconds. */
function runToEnd(command: string[]): Promise<number> {
  const t0 = performance.now();
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) =>
      code === 0
        ? resolve((performance.now() - t0) / 1000)
        : reject(new Error(`${command.join(' ')} exited with ${code}`)),
    );
  });
}

function report(o: PenaltyOptions, phases: PhaseResult[]): string {
  const base = phases[0];
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
  const x = (v: number, b: number) => (Number.isFinite(v) && b > 0 ? `${(v / b).toFixed(2)}x` : '-');
  const rows = phases.map((p) => [
    p.name,
    `${f(p.http.p50)} / ${f(p.http.p99)}`,
    x(p.http.p99, base.http.p99),
    `${f(p.disk.p50)} / ${f(p.disk.p99)}`,
    x(p.disk.p99, base.disk.p99),
    p.backupSeconds === undefined ? '-' : `${p.backupSeconds.toFixed(1)} s`,
    `${p.machineBusyPercent.toFixed(0)}%`,
  ]);
  const header = [
    'phase',
    'HTTP p50 / p99 ms',
    'p99 vs base',
    'disk p50 / p99 ms',
    'p99 vs base',
    'backup took',
    'machine busy',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [
    `Headroom penalty benchmark: ${os.cpus().length} cores, node ${process.version}`,
    `foreground  HTTP server at ${o.ratePerSec} requests/s (open loop; each request hashes 256 KiB and reads a 64 KiB file),`,
    '            and a disk probe (4 KiB write + fdatasync every 50 ms)',
    `backup      tar | gzip -1 of ${(o.dataBytes / MiB / 1024).toFixed(1)} GiB read from disk (evicted from the page cache first), written to a file`,
    `budget      under Headroom: ${o.cpuPercent}% of a core, ${(o.ioBytesPerSec / MiB).toFixed(0)} MiB/s`,
    '',
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
  ];
  for (const p of phases) {
    if (p.httpErrors > 0) out.push(`${p.name}: ${p.httpErrors} HTTP errors`);
    for (const n of p.notes) out.push(`${p.name}: ${n}`);
  }
  const headroom = phases.find((p) => p.name.startsWith('b'));
  const unthrottled = phases.find((p) => p.name.startsWith('a'));
  if (headroom && unthrottled) {
    const ratio = headroom.http.p99 / base.http.p99;
    out.push(
      `target: HTTP p99 inflation under Headroom < 1.25x: ${ratio.toFixed(2)}x -> ${ratio < 1.25 ? 'met' : 'MISSED'} ` +
        `(unthrottled: ${(unthrottled.http.p99 / base.http.p99).toFixed(2)}x)`,
    );
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const dir = tempDir('headroom-bench-penalty-');
  const dataDir = path.join(dir, 'data');
  const out = path.join(dir, 'backup.tar.gz');
  let foreground: Foreground | undefined;
  /** Stops what phase (b) started, when it is interrupted. */
  let stopHeadroom: (() => Promise<void>) | undefined;
  const cleanup = async () => {
    foreground?.stop();
    await stopHeadroom?.();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    progress(`generating ${(o.dataBytes / MiB).toFixed(0)} MiB of data in ${dataDir}`);
    const files = generateDataSet(dataDir, o.dataBytes);
    const evict = () => {
      for (const file of files) evictFromPageCache(file);
    };
    foreground = await startForegrounds(dir, o.ratePerSec);
    await new Promise((r) => setTimeout(r, 2_000)); // warm-up: connections open, JIT warm
    const phases: PhaseResult[] = [];
    progress(`0. baseline: ${o.baselineMs / 1000} s without a backup`);
    phases.push(await measure('0. no backup', foreground, o.baselineMs));
    progress('a. the backup, unthrottled');
    evict();
    phases.push(
      await measure('a. unthrottled', foreground, async () => ({
        backupSeconds: await runToEnd(backupCommand(dataDir, out)),
        notes: [],
      })),
    );
    fs.rmSync(out, { force: true });
    progress('b. the backup run by headroom-agent under its budget');
    evict();
    phases.push(
      await measure('b. Headroom', foreground, () =>
        runUnderHeadroom({
          dir,
          command: backupCommand(dataDir, out),
          options: o,
          progress,
          onStop: (stop) => (stopHeadroom = stop),
        }),
      ),
    );
    const text = report(o, phases);
    const json = path.resolve(__dirname, '..', '..', '.bench', 'penalty.json');
    ensureDirFor(json);
    fs.writeFileSync(json, `${JSON.stringify({ options: o, phases }, null, 2)}\n`);
    process.stdout.write(`\n${text}\nJSON results: ${path.relative(process.cwd(), json)}\n`);
  } finally {
    await cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:penalty failed: ${(e as Error).message}\n`);
  process.exit(1);
});

/**
 * The measuring half of `npm run bench:penalty`, shared by its host run (penalty.ts) and its in-guest run
 * (penalty-guest-run.ts, which runs under Node inside the VM): starts the foreground processes
 * (penalty-foreground.ts: HTTP server, disk probe, working-set reader) and the open-loop HTTP load, and
 * measures them while a phase runs; and the data set the backup reads. Node built-ins and bench/ files
 * only, so that it runs in the guest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type LatencySummary, OpenLoopLoad, summarise } from './penalty-load';
import { machineCpuMs } from './proc-stats';

export interface PhaseResult {
  name: string;
  http: LatencySummary;
  httpErrors: number;
  disk: LatencySummary;
  /** The working-set reader's page-cache hit rate in the phase, percent of the bytes it read. */
  worksetHitPercent: number;
  backupSeconds?: number;
  machineBusyPercent: number;
  notes: string[];
}

/** What runs the backup during a phase, or how long a phase without one lasts (ms). */
export type PhaseAction = number | (() => Promise<{ backupSeconds: number; notes: string[] }>);

/** Starts one foreground process and waits for its first line. */
function startForeground(args: string[]): Promise<{ child: ChildProcess; firstLine: string; lines: string[] }> {
  const child = spawn(process.execPath, [path.join(__dirname, 'penalty-foreground.js'), ...args], {
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
    child.once('exit', (code) => reject(new Error(`the ${args[0]} foreground exited with ${code}`)));
  });
}

/** Sends SIGUSR2 and resolves with the line it answers. */
async function ask(p: { child: ChildProcess; lines: string[] }): Promise<string> {
  const seen = p.lines.length;
  p.child.kill('SIGUSR2');
  while (p.lines.length === seen) await new Promise((r) => setTimeout(r, 10));
  return p.lines[p.lines.length - 1];
}

export interface Foreground {
  /** What the probes measured since the last call. */
  take(): Promise<{
    http: number[];
    httpErrors: number;
    disk: number[];
    workset: { requestedBytes: number; storageBytes: number };
  }>;
  stop(): void;
}

/** Starts the foreground in `dir`: HTTP at `ratePerSec`, the disk probe, and a working set of `worksetMiB`. */
export async function startForegrounds(dir: string, ratePerSec: number, worksetMiB: number): Promise<Foreground> {
  const http = await startForeground(['http', dir]);
  const disk = await startForeground(['disk', dir]);
  const workset = await startForeground(['workset', dir, String(worksetMiB)]);
  const load = new OpenLoopLoad(Number(/listening on (\d+)/.exec(http.firstLine)![1]), ratePerSec);
  load.start();
  return {
    async take() {
      const diskLine = await ask(disk);
      const worksetLine = await ask(workset);
      const { latenciesMs, errors } = load.take();
      return {
        http: latenciesMs,
        httpErrors: errors,
        disk: JSON.parse(diskLine) as number[],
        workset: JSON.parse(worksetLine) as { requestedBytes: number; storageBytes: number },
      };
    },
    stop() {
      load.stop();
      for (const p of [http, disk, workset]) p.child.kill('SIGTERM');
    },
  };
}

/** Measures the foreground while `during` runs (or for a fixed time when it is a number of ms). */
export async function measure(name: string, foreground: Foreground, during: PhaseAction): Promise<PhaseResult> {
  await foreground.take(); // drop what came before this phase
  const cpu0 = machineCpuMs();
  let backupSeconds: number | undefined;
  let notes: string[] = [];
  if (typeof during === 'number') await new Promise((r) => setTimeout(r, during));
  else ({ backupSeconds, notes } = await during());
  const cpu1 = machineCpuMs();
  const taken = await foreground.take();
  const { requestedBytes, storageBytes } = taken.workset;
  return {
    name,
    http: summarise(taken.http),
    httpErrors: taken.httpErrors,
    disk: summarise(taken.disk),
    worksetHitPercent: requestedBytes > 0 ? 100 * Math.max(0, 1 - storageBytes / requestedBytes) : NaN,
    backupSeconds,
    machineBusyPercent: (100 * (cpu1.busy - cpu0.busy)) / Math.max(1, cpu1.total - cpu0.total),
    notes,
  };
}

/** Runs a command to its end; resolves with its duration in seconds. */
export function runToEnd(command: string[]): Promise<number> {
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

/** The backup: everything under `dataDir`, tar'd and gzip'd into `out`. */
export function backupCommand(dataDir: string, out: string): string[] {
  return ['sh', '-c', 'tar -C "$1" -cf - . | gzip -1 > "$2"', 'backup', dataDir, out];
}

const MiB = 1024 * 1024;
/** The data set's files: 64 MiB each. */
export const DATA_FILE_BYTES = 64 * MiB;

/** Half random, half zeros per MiB: gzip has real work to do and shrinks it about by half, like real data. */
export function generateDataSet(dir: string, bytes: number): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const zeros = Buffer.alloc(MiB / 2);
  for (let i = 0; i * DATA_FILE_BYTES < bytes; i++) {
    const file = path.join(dir, `part-${String(i).padStart(4, '0')}.bin`);
    const fd = fs.openSync(file, 'w');
    for (let off = 0; off < DATA_FILE_BYTES; off += MiB) {
      fs.writeSync(fd, randomBytes(MiB / 2));
      fs.writeSync(fd, zeros);
    }
    fs.closeSync(fd);
    files.push(file);
  }
  return files;
}

/**
 * `npm run bench:copy`: what host-backup's copy control does to a copy QEMU makes (the qmp driver), with
 * real processes: a qemu-storage-daemon with a qcow2 disk full of data, the real `headroomctl qmp-backup`
 * following a CopyControlChannel exactly as `host-backup --driver qmp` runs it, and the figures read from
 * QEMU's own job counters (query-block-jobs on a second QMP monitor), never from our processes.
 *
 * One full backup goes through three phases: (a) under a budget (the channel's setSpeed: QEMU's
 * block-job-set-speed), (b) paused (block-job-pause), (c) unthrottled (speed 0) to its end. Each phase
 * reports the bytes QEMU copied, for how long, and the throughput; the paused phase the bytes copied after
 * QEMU showed the job paused (which must be 0). Prints figures; never fails on them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunningChild } from '../common/backup-run/child-process';
import { CopyControlChannel } from '../host-backup/copy-control-channel';
import type { QmpClient } from '../host-backup/hypervisor/qmp-client';
import { StorageDaemon, spawnQmpBackup } from '../test/integration/host-backup/storage-daemon';
import { ensureDirFor } from './proc-stats';

const MiB = 1024 * 1024;
const SAMPLE_MS = 100;

interface CopyOptions {
  /** The disk's size, all of it data. Default 1 GiB. */
  sizeBytes: number;
  /** The budget of phase (a). Default 32 MiB/s. */
  ioBytesPerSec: number;
  /** Length of phases (a) and (b), ms. Default 5 s. */
  phaseMs: number;
}

const USAGE = `Usage: npm run bench:copy -- [options]
  --size-mib N     the disk, all data (default 1024)
  --io-mibps N     the budget of the limited phase, MiB/s (default 32)
  --phase-s N      length of the limited and the paused phase, seconds (default 5)`;

function parseArgs(argv: string[]): CopyOptions {
  const o: CopyOptions = { sizeBytes: 1024 * MiB, ioBytesPerSec: 32 * MiB, phaseMs: 5_000 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '-h' || flag === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    const n = Number(value);
    if (!(n > 0)) throw new Error(`${flag}: expected a positive number, got ${value}\n${USAGE}`);
    i++;
    if (flag === '--size-mib') o.sizeBytes = Math.round(n * MiB);
    else if (flag === '--io-mibps') o.ioBytesPerSec = Math.round(n * MiB);
    else if (flag === '--phase-s') o.phaseMs = Math.round(n * 1000);
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  return o;
}

/** QEMU's counters for the backup's job at one moment; undefined once the job is gone. */
interface Sample {
  atMs: number;
  offset: number;
  len: number;
  paused: boolean;
  speed: number;
}

async function sample(observer: QmpClient): Promise<Sample | undefined> {
  const jobs = await observer.execute<Array<{ device: string } & Omit<Sample, 'atMs'>>>('query-block-jobs');
  const j = jobs.find((x) => x.device.startsWith('headroom-backup-'));
  return j && { atMs: Date.now(), offset: j.offset, len: j.len, paused: j.paused, speed: j.speed };
}

/**
 * Samples the job every SAMPLE_MS for `ms`, or until it is gone: then it has copied all of `len` (the
 * backup's exit code says whether it completed), which the last sample stands for.
 */
async function watch(observer: QmpClient, ms: number): Promise<Sample[]> {
  const out: Sample[] = [];
  const until = Date.now() + ms;
  for (;;) {
    const s = await sample(observer);
    const last = out[out.length - 1];
    if (!s && last) out.push({ ...last, atMs: Date.now(), offset: last.len });
    if (!s) return out;
    out.push(s);
    if (Date.now() >= until) return out;
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
}

interface Phase {
  name: string;
  /** QEMU's job speed in force (0: none). */
  speedBytesPerSec: number;
  copiedBytes: number;
  ms: number;
  mibPerSec: number;
  /** Paused phase: bytes copied after QEMU first showed the job paused. */
  copiedWhilePausedBytes?: number;
}

function phase(name: string, samples: Sample[], extra: Partial<Phase> = {}): Phase {
  const [first, last] = [samples[0], samples[samples.length - 1]];
  const copiedBytes = last.offset - first.offset;
  const ms = last.atMs - first.atMs;
  return {
    name,
    speedBytesPerSec: last.speed,
    copiedBytes,
    ms,
    mibPerSec: ms > 0 ? copiedBytes / MiB / (ms / 1000) : 0,
    ...extra,
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-bench-copy-'));
  const daemon = new StorageDaemon(dir, [{ name: 'disk0', size: o.sizeBytes, filled: o.sizeBytes }]);
  const channel = CopyControlChannel.create();
  let child: RunningChild | undefined;
  let observer: QmpClient | undefined;
  try {
    process.stdout.write(`writing ${o.sizeBytes / MiB} MiB of data into the disk…\n`);
    await daemon.start();
    observer = await daemon.observe();
    // The budget before the start, as host-backup sets it from the token: the job starts at it.
    const limited = channel.setSpeed(o.ioBytesPerSec);
    child = spawnQmpBackup(daemon, 'bench', path.join(dir, 'backups'), channel);
    await limited;
    const phases: Phase[] = [];
    phases.push(phase('(a) under a budget', await watch(observer, o.phaseMs)));

    await channel.pause();
    const pausing = await watch(observer, o.phaseMs);
    const pausedAt = pausing.findIndex((s) => s.paused);
    const paused = pausing.slice(Math.max(0, pausedAt));
    phases.push(
      phase('(b) paused', pausing, {
        copiedWhilePausedBytes: paused[paused.length - 1].offset - paused[0].offset,
        ms: paused[paused.length - 1].atMs - paused[0].atMs,
      }),
    );

    // The limit lifted while paused, then resumed; watched from before the resume, counted from the first
    // read that shows the job running again (what the channel's round trip takes is not the copy's).
    await channel.setSpeed(0);
    const watching = watch(observer, 600_000);
    await channel.resume();
    const unthrottled = await watching;
    phases.push(
      phase(
        '(c) unthrottled',
        unthrottled.slice(
          Math.max(
            0,
            unthrottled.findIndex((x) => !x.paused),
          ),
        ),
      ),
    );
    const exit = await child.exited;
    child = undefined;

    const lines = [
      `QEMU-side copy of a ${o.sizeBytes / MiB} MiB qcow2 disk (qemu-storage-daemon, qmp-backup under a copy control channel); figures from query-block-jobs`,
      'phase                 job speed     copied     time    throughput',
      ...phases.map(
        (p) =>
          `${p.name.padEnd(20)}  ${(p.speedBytesPerSec ? `${p.speedBytesPerSec / MiB} MiB/s` : 'none').padStart(9)}  ${`${(p.copiedBytes / MiB).toFixed(1)} MiB`.padStart(10)}  ${`${(p.ms / 1000).toFixed(1)} s`.padStart(7)}  ${`${p.mibPerSec.toFixed(1)} MiB/s`.padStart(12)}${p.copiedWhilePausedBytes !== undefined ? `   (${p.copiedWhilePausedBytes} bytes copied while QEMU showed the job paused)` : ''}`,
      ),
      `qmp-backup exit code ${exit.exitCode}`,
    ];
    const json = path.resolve(__dirname, '..', '..', '.bench', 'copy.json');
    ensureDirFor(json);
    fs.writeFileSync(json, `${JSON.stringify({ options: o, phases }, null, 2)}\n`);
    process.stdout.write(`\n${lines.join('\n')}\nJSON results: ${path.relative(process.cwd(), json)}\n`);
  } finally {
    await child?.stop(5_000);
    observer?.close();
    channel.close();
    await daemon.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});

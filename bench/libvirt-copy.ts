/**
 * `npm run bench:libvirt-copy`: the copy of a libvirt backup (QEMU's block job) unthrottled, under a speed
 * and while paused, from QEMU's own counters (libvirt's job statistics, through the driver's CopyControl),
 * on a test domain with a disk full of data. Prints figures; asserts nothing.
 *
 *   node dist/bench/libvirt-copy.js [--size-mib 512] [--speed-mib 16]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../common/util/log';
import type { CopyControl } from '../host-backup/hypervisor/copy-control';
import { runLibvirtBackup } from '../host-backup/libvirt-backup';
import { LIBVIRT_URI, ensureLibvirtd, startTestDomain } from '../test/helpers/libvirtd';

const MiB = 1024 * 1024;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Phase {
  phase: string;
  seconds: number;
  copiedMiB: number;
  mibPerSecond: number;
}

/** Bytes QEMU copied over `ms`, as its counters say. */
async function measure(phase: string, c: CopyControl, ms: number): Promise<Phase> {
  const a = await c.progress();
  const t = process.hrtime.bigint();
  await sleep(ms);
  const b = await c.progress();
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const copiedMiB = (b.done - a.done) / MiB;
  return { phase, seconds, copiedMiB, mibPerSecond: copiedMiB / seconds };
}

async function main(): Promise<void> {
  const size = flag('size-mib', 512) * MiB;
  const speed = flag('speed-mib', 16) * MiB;
  await ensureLibvirtd();
  const domain = await startTestDomain({ diskSizes: [size] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-bench-libvirt-'));
  fs.chmodSync(dir, 0o755);
  try {
    await domain.write('vda', 0, size, 0x5a);
    const phases: Phase[] = [];
    const run = async (speedBytes: number, body: (c: CopyControl) => Promise<void>) => {
      let control: CopyControl | undefined;
      const backup = runLibvirtBackup({
        domain: domain.uuid,
        uri: LIBVIRT_URI,
        target: path.join(dir, `catalog-${phases.length}`),
        forceFull: true,
        speed: speedBytes || undefined,
        now: Date.now,
        signal: new AbortController().signal,
        log: createLogger({ level: 'silent' }),
        onCopy: (c) => (control = c),
      });
      while (!control) await sleep(5);
      await body(control);
      await control.setSpeed(0);
      await control.resume();
      const outcome = await backup;
      if (outcome.status !== 'done') throw new Error(`backup ${outcome.status}: ${outcome.failure ?? ''}`);
    };
    // Unthrottled: the whole copy, start to end.
    const t = process.hrtime.bigint();
    await run(0, async () => undefined);
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    phases.push({
      phase: 'unthrottled: the whole run (planning, copy, SHA-256)',
      seconds,
      copiedMiB: size / MiB,
      mibPerSecond: size / MiB / seconds,
    });
    await run(speed, async (c) => {
      const start = await c.progress();
      phases.push({
        phase: `speed ${speed / MiB} MiB/s: copied by the time the job was handed over`,
        seconds: 0,
        copiedMiB: start.done / MiB,
        mibPerSecond: 0,
      });
      await sleep(1000);
      phases.push(await measure(`speed ${speed / MiB} MiB/s`, c, 4000));
      await c.pause();
      await sleep(500);
      phases.push(await measure('paused', c, 3000));
      await c.resume();
      phases.push(await measure(`resumed at ${speed / MiB} MiB/s`, c, 3000));
    });
    console.table(
      phases.map((p) => ({
        ...p,
        seconds: +p.seconds.toFixed(2),
        copiedMiB: +p.copiedMiB.toFixed(1),
        mibPerSecond: +p.mibPerSecond.toFixed(1),
      })),
    );
    fs.mkdirSync('.bench', { recursive: true });
    fs.writeFileSync('.bench/libvirt-copy.json', `${JSON.stringify({ size, speed, phases }, null, 2)}\n`);
  } finally {
    await domain.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/**
 * `headroomctl host-backup` steered by what the host's work waits for, everything real: a real
 * coordinator, the real headroomctl sampling this machine, and a writer that syncs every block
 * (`dd oflag=dsync`), which keeps tasks waiting on the disk. On a kernel with PSI the rise of
 * /proc/pressure/io throttles the running command and its fall gives the budget back; on one without, the
 * same happens on the fallback signal (the host's foreground disk bytes). Each budget change names the
 * signal it followed, and the test asserts it is the one this machine offers.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { waitFor } from '../agent/processes';
import { jsonLines, killAll, type RunningCtl, runCtl, spawnCtl } from '../ctl/ctl-process';

/** Whether this kernel reports I/O pressure (no file without CONFIG_PSI; EOPNOTSUPP when booted with psi=0). */
function hasPsi(): boolean {
  try {
    fs.readFileSync('/proc/pressure/io', 'utf8');
    return true;
  } catch {
    return false;
  }
}

describe('headroomctl host-backup steered by I/O pressure', function () {
  this.timeout(300_000);
  let coordinator: RunningCoordinator;
  let writer: ChildProcess | undefined;
  let hb: RunningCtl | undefined;

  before(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
  });
  afterEach(() => {
    if (writer) process.kill(-writer.pid!, 'SIGKILL');
    writer = undefined;
  });
  after(async () => {
    hb?.process.kill('SIGTERM');
    await killAll();
    await coordinator.kill();
  });

  it('throttles a running command while a syncing writer makes the host wait on its disk, and restores it after', async () => {
    const psi = hasPsi();
    // Only the signal under test: the CPU thresholds off (the other sessions on this machine keep its CPU
    // busy); the throttle threshold far above what the machine waits without our writer, far under what
    // the writer makes it wait (/proc/pressure/io some avg10: about 1 % idle, 60 % with one dsync writer).
    const thresholds = psi
      ? ['--throttle-above-io-pressure', '20', '--resume-below-io-pressure', '8']
      : ['--throttle-above-io', '8MiB', '--resume-below-io', '4MiB'];
    const policy = await runCtl([
      '--coordinator',
      coordinator.address,
      'policy',
      'set',
      '--host',
      'host-a',
      '--report-interval',
      '1s',
      '--budget-dwell',
      '2s',
      '--throttle-above-cpu',
      '0',
      '--pause-above-cpu',
      '0',
      '--throttled-cpu',
      '10',
      ...thresholds,
    ]);
    assert.equal(policy.code, 0, policy.stderr);
    const signal = psi ? 'pressure (PSI)' : 'cpu% (fallback)';
    const busy = psi
      ? /^host busy: io pressure [\d.]+% >= 20\.0%$/
      : /^host busy: foreground io [\d.]+ MiB\/s >= 8\.0 MiB\/s$/;
    const calm = psi ? /^host calmer for \d+s: io pressure [\d.]+%/ : /^host calmer for \d+s: foreground io/;

    const dir = tempDir();
    hb = spawnCtl([
      '--coordinator',
      coordinator.address,
      '--json',
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-1',
      '--cpu-limit',
      '50',
      '--',
      'sh',
      '-c',
      'while :; do sleep 1; done',
    ]);
    const changes = () => jsonLines(hb!.stderr()).filter((e) => e.event === 'budget-change' && e.ok);
    await hb.waitFor('stderr', /"event":"controlling"/, 30_000);
    // Should something else on this machine have made it wait meanwhile, start from the budget given back.
    await waitFor(
      'the command at its full budget',
      () => changes().length === 0 || changes().at(-1)!.budget.cpuPercent === 50,
      120_000,
    );

    const before = changes().length;
    const script = `while :; do dd if=/dev/zero of=${path.join(dir, 'sync')} bs=4k count=256 oflag=dsync status=none; done`;
    writer = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
    const throttled = await waitFor(
      'a throttle after the writer started',
      () =>
        changes()
          .slice(before)
          .find((e) => busy.test(e.reason)),
      120_000,
    );
    assert.equal(throttled.signal, signal, 'the decision followed the signal this machine offers');
    assert.deepEqual(throttled.budget, { cpuPercent: 10, ioBytesPerSec: 10 * 1024 * 1024 });
    assert.equal(throttled.paused, false);

    const calmFrom = changes().length;
    process.kill(-writer.pid!, 'SIGKILL');
    writer = undefined;
    const restored = await waitFor(
      'the budget back after the writer stopped',
      () =>
        changes()
          .slice(calmFrom)
          .find((e) => calm.test(e.reason)),
      180_000,
    );
    assert.equal(restored.signal, signal);
    assert.deepEqual(restored.budget, { cpuPercent: 50, ioBytesPerSec: 0 });
    console.log(`      ${signal}: "${throttled.reason}", then "${restored.reason}"`);
  });
});

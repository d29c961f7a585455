/**
 * `headroomctl host-backup` steered by what the host's work waits for, everything real: a real
 * coordinator, the real headroomctl sampling this machine, and a writer that syncs every block
 * (`dd oflag=dsync`), which keeps tasks waiting on the disk. On a kernel with PSI the rise of
 * /proc/pressure/io throttles the running command and its fall gives the budget back; on one without, the
 * same happens on the fallback signal (the host's foreground disk bytes). Each budget change names the
 * signal it followed, and the test asserts it is the one this machine offers. With the fixed budget mode
 * the command drops to the throttled budget; with the adaptive one its budget is halved, cut again while the
 * writer runs, and climbs back by steps once it has stopped.
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

const PSI = hasPsi();
const SIGNAL = PSI ? 'pressure (PSI)' : 'cpu% (fallback)';
const BUSY = PSI
  ? /host busy: io pressure [\d.]+% >= 20\.0%$/
  : /host busy: foreground io [\d.]+ MiB\/s >= 8\.0 MiB\/s$/;
const MiB = 1024 * 1024;

describe('headroomctl host-backup steered by I/O pressure', function () {
  this.timeout(300_000);
  let coordinator: RunningCoordinator;
  let writer: ChildProcess | undefined;
  let hb: RunningCtl | undefined;

  before(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
  });
  afterEach(async () => {
    if (writer) process.kill(-writer.pid!, 'SIGKILL');
    writer = undefined;
    hb?.process.kill('SIGTERM');
    await hb?.done;
  });
  after(async () => {
    await killAll();
    await coordinator.kill();
  });

  /**
   * Sets the policy (only the signal under test, in `mode`), starts a command under --cpu-limit 40 and waits
   * until it runs at that budget; then starts the writer. Returns the successful budget changes so far.
   */
  async function runUnderWriter(mode: 'fixed' | 'adaptive'): Promise<() => Record<string, any>[]> {
    // The CPU thresholds off (the other sessions on this machine keep its CPU busy); the throttle threshold
    // far above what the machine waits without our writer, far under what the writer makes it wait
    // (/proc/pressure/io some avg10: about 1 % idle, 60 % with one dsync writer).
    const thresholds = PSI
      ? ['--throttle-above-io-pressure', '20', '--resume-below-io-pressure', '8']
      : ['--throttle-above-io', '8MiB', '--resume-below-io', '4MiB'];
    const set = ['policy', 'set', '--host', 'host-a', '--report-interval', '1s', '--budget-dwell', '2s'];
    const cpuOff = ['--throttle-above-cpu', '0', '--pause-above-cpu', '0', '--throttled-cpu', '10'];
    const policy = await runCtl([
      '--coordinator',
      coordinator.address,
      ...set,
      ...cpuOff,
      '--budget-mode',
      mode,
      ...thresholds,
    ]);
    assert.equal(policy.code, 0, policy.stderr);
    const command = ['sh', '-c', 'while :; do sleep 1; done'];
    const run = spawnCtl(
      ['--coordinator', coordinator.address, '--json', 'host-backup', '--host', 'host-a'].concat([
        '--vm',
        'vm-1',
        '--cpu-limit',
        '40',
        '--',
        ...command,
      ]),
    );
    hb = run;
    const changes = () => jsonLines(run.stderr()).filter((e) => e.event === 'budget-change' && e.ok);
    await run.waitFor('stderr', /"event":"controlling"/, 30_000);
    // Should something else on this machine have made it wait meanwhile, start from the budget given back.
    await waitFor(
      'the command at its full budget',
      // Both limits: after an earlier rise (another test's I/O) the adaptive I/O limit may still be climbing.
      () => changes().length === 0 || isFullBudget(changes().at(-1)!),
      120_000,
    );
    const before = changes().length;
    const script = `while :; do dd if=/dev/zero of=${path.join(tempDir(), 'sync')} bs=4k count=256 oflag=dsync status=none; done`;
    writer = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
    return () => changes().slice(before);
  }

  function stopWriter(): void {
    process.kill(-writer!.pid!, 'SIGKILL');
    writer = undefined;
  }

  it('throttles a running command while a syncing writer makes the host wait on its disk, and restores it after', async () => {
    const changes = await runUnderWriter('fixed');
    const throttled = await waitFor('a throttle', () => changes().find((e) => BUSY.test(e.reason)), 120_000);
    assert.equal(throttled.signal, SIGNAL, 'the decision followed the signal this machine offers');
    assert.deepEqual(throttled.budget, { cpuPercent: 10, ioBytesPerSec: 10 * MiB });
    assert.equal(throttled.paused, false);

    const calmFrom = changes().length;
    stopWriter();
    const calm = /^host calmer for \d+s: /;
    const restored = await waitFor(
      'the budget back',
      () =>
        changes()
          .slice(calmFrom)
          .find((e) => calm.test(e.reason)),
      180_000,
    );
    assert.equal(restored.signal, SIGNAL);
    assert.deepEqual(restored.budget, { cpuPercent: 40, ioBytesPerSec: 0 });
    console.log(`      ${SIGNAL}: "${throttled.reason}", then "${restored.reason}"`);
  });

  it('in adaptive mode halves the budget at the rise, cuts it again while it lasts, and climbs back by steps after', async () => {
    const changes = await runUnderWriter('adaptive');
    const first = await waitFor('a cut', () => changes().find((e) => BUSY.test(e.reason)), 120_000);
    assert.equal(first.signal, SIGNAL);
    // Half the full 40 %, not the fixed throttled 10 %; the I/O (no limit) halved from its top, 10 × 10 MiB/s.
    assert.deepEqual(first.budget, { cpuPercent: 20, ioBytesPerSec: 50 * MiB });
    const again = await waitFor(
      'a second cut',
      () => changes().find((e) => /^adaptive budget cut: /.test(e.reason) && BUSY.test(e.reason)),
      120_000,
    );
    assert.equal(again.budget.cpuPercent, 10);

    const calmFrom = changes().length;
    stopWriter();
    await waitFor('the full budget back', () => changes().slice(calmFrom).some(isFullBudget), 240_000);
    const afterCalm = changes().slice(calmFrom);
    const climbing = afterCalm.slice(0, afterCalm.findIndex(isFullBudget) + 1);
    const climb = climbing.map((e) => e.budget.cpuPercent);
    assert.ok(climb.length > 2, `climbed back by steps: ${climb.join(' → ')}`);
    assert.deepEqual(
      climb,
      [...climb].sort((a, b) => a - b),
      `never cut while calm: ${climb.join(' → ')}`,
    );
    assert.ok(
      changes()
        .slice(calmFrom)
        .some((e) => /^adaptive budget raised: host calm/.test(e.reason)),
    );
    console.log(
      `      adaptive, ${SIGNAL}: cpu 40 → ${first.budget.cpuPercent} → ${again.budget.cpuPercent}, then ${climb.join(' → ')}`,
    );
  });
});

/** The command's full budget under these tests' policy: 40 % of a core and no I/O limit. */
function isFullBudget(e: Record<string, any>): boolean {
  return e.budget.cpuPercent === 40 && e.budget.ioBytesPerSec === 0;
}

import { strict as assert } from 'node:assert';
import type { v1 } from '../../../proto';
import type { TokenClient } from '../../../common/connection';
import type { GuardedRunOptions, GuardedRunResult, StopReason } from '../../../common/guarded-run';
import type { JobConfig } from '../../../agent/config';
import { JobRunner } from '../../../agent/job-runner';
import { captureLog, token } from '../common/guarded-run-fakes';

const T0 = Date.UTC(2026, 0, 5, 2, 0, 0);
const job: JobConfig = {
  name: 'nightly',
  schedule: '0 2 * * *',
  windowMs: 3_600_000,
  expectedDurationMs: 600_000,
  command: ['restic', 'backup', '/data'],
  priority: 3,
  cost: { ioBytesPerSec: 0, cpuPercent: 0 },
};
const occurrence = { scheduledAtUnixMs: T0, windowEndUnixMs: T0 + 3_600_000 };

/** A guarded run the test finishes by hand. */
class FakeRuns {
  readonly calls: { options: GuardedRunOptions; finish: (r: GuardedRunResult) => void; stopReason?: StopReason }[] = [];
  run = (options: GuardedRunOptions): Promise<GuardedRunResult> =>
    new Promise((resolve) => {
      const call = { options, finish: resolve, stopReason: undefined as StopReason | undefined };
      options.signal!.addEventListener('abort', () => {
        call.stopReason = options.signal!.reason as StopReason;
        resolve({ status: 'revoked', exitCode: 75, message: 'stopped' });
      });
      this.calls.push(call);
    });
}

function setup() {
  const runs = new FakeRuns();
  const { lines, log } = captureLog();
  let host = '';
  const runner = new JobRunner({
    client: {} as TokenClient,
    vm: 'vm-1',
    host: () => host,
    clock: { now: () => T0 },
    log,
    killGraceMs: 5_000,
    onUnreachable: 'skip',
    run: runs.run,
  });
  return { runs, lines, runner, setHost: (h: string) => (host = h) };
}

const revoke = (tokenId: string): v1.Command__Output => ({
  commandId: 'cmd-1',
  action: 'revoke',
  revoke: { tokenId, fencing: 7, reason: 'window closed' },
});

describe('JobRunner', () => {
  it('asks for a GUEST token for the job with its window, priority and the current host', async () => {
    const { runs, runner, setHost } = setup();
    setHost('host-b');
    const done = runner.trigger(job, occurrence)!;
    const o = runs.calls[0].options;
    assert.deepEqual(o.request, {
      kind: 'GUEST',
      host: 'host-b',
      vm: 'vm-1',
      job: 'nightly',
      expectedDurationMs: 600_000,
      latestStartUnixMs: T0 + 3_600_000,
      windowEndUnixMs: T0 + 3_600_000,
      priority: 3,
    });
    assert.deepEqual(o.argv, ['restic', 'backup', '/data']);
    assert.equal(o.killGraceMs, 5_000);
    assert.equal(o.onUnreachable, 'skip');
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: 'exit code 0' });
    assert.equal((await done).status, 'succeeded');
    assert.deepEqual(runner.runningJobs(), []);
  });

  it('does not start a job twice while its previous run is still going, and says so', async () => {
    const { runs, runner, lines } = setup();
    const first = runner.trigger(job, occurrence)!;
    assert.equal(runner.trigger(job, { scheduledAtUnixMs: T0 + 60_000, windowEndUnixMs: T0 + 120_000 }), undefined);
    assert.equal(runs.calls.length, 1);
    const warn = lines.find((l) => l.msg === 'previous run still going; not starting this one');
    assert.ok(warn);
    assert.equal(warn.job, 'nightly');
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: '' });
    await first;
    assert.ok(runner.trigger(job, occurrence));
    assert.equal(runs.calls.length, 2);
  });

  it('stops the run holding a revoked token and acknowledges the command', async () => {
    const { runs, runner } = setup();
    const done = runner.trigger(job, occurrence)!;
    runs.calls[0].options.hooks!.onGranted!(token({ tokenId: 'tok-9' }));
    assert.deepEqual(runner.handleCommand(revoke('tok-other')), { ok: true, message: 'no job runs under this token' });
    assert.equal(runs.calls[0].stopReason, undefined);
    assert.deepEqual(runner.handleCommand(revoke('tok-9')), { ok: true, message: 'stopping job nightly' });
    assert.deepEqual(runs.calls[0].stopReason, { kind: 'revoke', reason: 'window closed' });
    await done;
  });

  it('stops a run at once when its revoke overtook the grant', async () => {
    const { runs, runner } = setup();
    const done = runner.trigger(job, occurrence)!;
    runner.handleCommand(revoke('tok-late'));
    runs.calls[0].options.hooks!.onGranted!(token({ tokenId: 'tok-late' }));
    assert.equal(runs.calls[0].stopReason?.kind, 'revoke');
    await done;
  });

  it('notes budgets and grants without failing them', () => {
    const { runs, runner, lines } = setup();
    void runner.trigger(job, occurrence);
    runs.calls[0].options.hooks!.onGranted!(token({ tokenId: 'tok-1' }));
    const ack = runner.handleCommand({ commandId: 'c2', action: 'budget', budget: { tokenId: 'tok-1', budget: { ioBytesPerSec: 1e6, cpuPercent: 50 }, paused: false, reason: '' } });
    assert.equal(ack.ok, true);
    assert.ok(lines.some((l) => l.msg === 'budget received (not enforced yet)' && l.job === 'nightly' && l.ioBytesPerSec === 1e6));
    assert.equal(runner.handleCommand({ commandId: 'c3', action: 'granted', granted: { token: token({ kind: 'HYPERVISOR' }) } }).ok, true);
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: '' });
  });

  it('logs a skipped run as an error naming the job and its window', async () => {
    const { runs, runner, lines } = setup();
    const done = runner.trigger(job, occurrence)!;
    runs.calls[0].finish({ status: 'skipped', exitCode: 75, message: 'skipped: coordinator unreachable' });
    await done;
    const err = lines.find((l) => l.level === 'error');
    assert.ok(err);
    assert.equal(err.job, 'nightly');
    assert.match(String(err.msg), /job skipped: no token before its window closed \(window 2026-01-05T02:00:00\.000Z \+ 1h\)/);
  });

  it('on shutdown stops every run and waits for them, and starts no more', async () => {
    const { runs, runner } = setup();
    void runner.trigger(job, occurrence);
    void runner.trigger({ ...job, name: 'other' }, occurrence);
    await runner.shutdown('SIGTERM');
    assert.deepEqual(runs.calls.map((c) => c.stopReason?.kind), ['shutdown', 'shutdown']);
    assert.deepEqual(runner.runningJobs(), []);
    assert.equal(runner.trigger(job, occurrence), undefined);
  });
});

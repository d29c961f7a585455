import { strict as assert } from 'node:assert';
import type { v1 } from '../../../../proto';
import type { TokenClient } from '../../../../common/client/connection';
import type { GuardedRunOptions, GuardedRunResult, StopReason } from '../../../../common/backup-run/guarded-run';
import type { JobConfig } from '../../../../agent/config';
import { JobRunner } from '../../../../agent/jobs/job-runner';
import { captureLog, FakeChild, token } from '../../common/backup-run/guarded-run-fakes';
import { FakeMechanism } from '../../common/backup-run/budget/fake-enforcer';

const T0 = Date.UTC(2026, 0, 5, 2, 0, 0);
const job: JobConfig = {
  name: 'nightly',
  schedule: '0 2 * * *',
  windowMs: 3_600_000,
  expectedDurationMs: 600_000,
  command: ['restic', 'backup', '/data'],
  priority: 3,
  cost: { ioBytesPerSec: 0, cpuPercent: 0 },
  sharedTarget: '',
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
  const mechanism = new FakeMechanism();
  const reports: v1.BudgetReport[] = [];
  let host = '';
  const runner = new JobRunner({
    enforcement: mechanism,
    onBudgetReport: (r) => reports.push(r),
    client: {} as TokenClient,
    vm: 'vm-1',
    host: () => host,
    clock: { now: () => T0 },
    log,
    killGraceMs: 5_000,
    onUnreachable: 'skip',
    run: runs.run,
  });
  return { runs, lines, runner, mechanism, reports, setHost: (h: string) => (host = h) };
}

const budgetCommand = (tokenId: string, cpuPercent: number, paused = false, ioBytesPerSec = 0): v1.Command__Output => ({
  commandId: 'cmd-b',
  action: 'budget',
  budget: { tokenId, budget: { ioBytesPerSec, cpuPercent }, paused, reason: 'VM busy' },
});

/** Grants `tokenId` (with `budget`) to the first run and starts its command, as the guarded run does. */
function grantAndStart(runs: FakeRuns, tokenId: string, budget: v1.Budget__Output | null = null): FakeChild {
  const o = runs.calls[0].options;
  const t = token({ tokenId, budget });
  o.hooks!.onGranted!(t);
  const child = new FakeChild(o.argv);
  o.control!.started(child, t);
  o.hooks!.onStarted!(child.pid);
  return child;
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
      kind: 'TOKEN_KIND_GUEST',
      host: 'host-b',
      vm: 'vm-1',
      job: 'nightly',
      expectedDurationMs: 600_000,
      latestStartUnixMs: T0 + 3_600_000,
      windowEndUnixMs: T0 + 3_600_000,
      priority: 3,
      target: '',
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

  it("holds the job to its token's budget from its start and reports the mechanism in force", () => {
    const { runs, runner, mechanism, reports } = setup();
    void runner.trigger(job, occurrence);
    grantAndStart(runs, 'tok-1', { ioBytesPerSec: 5e6, cpuPercent: 30 });
    const enforcer = mechanism.enforcers[0];
    assert.equal(enforcer.group.pgid, 4242);
    assert.deepEqual(enforcer.calls, ['apply cpu=30 io=5000000']);
    assert.deepEqual(reports, [
      {
        tokenId: 'tok-1',
        budget: { ioBytesPerSec: 5e6, cpuPercent: 30 },
        paused: false,
        enforcement: 'ENFORCEMENT_CGROUP_V1',
        detail: 'fake cgroup /x; cgroup v2: not mounted',
      },
    ]);
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: '' });
  });

  it('changes the budget of the job under the token, pauses and resumes it, acknowledging and reporting each change', async () => {
    const { runs, runner, mechanism, reports } = setup();
    void runner.trigger(job, occurrence);
    grantAndStart(runs, 'tok-1');
    const enforcer = mechanism.enforcers[0];
    assert.deepEqual(await runner.handleCommand(budgetCommand('tok-1', 20, false, 1e6)), {
      ok: true,
      message: 'cpu 20% of a core, io 1.0 MB/s (CGROUP_V1)',
    });
    assert.deepEqual(await runner.handleCommand(budgetCommand('tok-1', 20, true, 1e6)), {
      ok: true,
      message: 'paused (cpu 20% of a core, io 1.0 MB/s once resumed) (CGROUP_V1)',
    });
    assert.deepEqual(await runner.handleCommand(budgetCommand('tok-1', 50, false)), {
      ok: true,
      message: 'cpu 50% of a core (CGROUP_V1)',
    });
    assert.deepEqual(enforcer.calls, [
      'apply cpu=0 io=0',
      'apply cpu=20 io=1000000',
      'pause',
      'apply cpu=50 io=0',
      'resume',
    ]);
    assert.deepEqual(
      reports.map((r) => [r.budget?.cpuPercent, r.paused]),
      [
        [0, false],
        [20, false],
        [20, true],
        [50, false],
      ],
    );
    assert.deepEqual(
      runner.budgetReports().map((r) => [r.tokenId, r.budget?.cpuPercent, r.paused]),
      [['tok-1', 50, false]],
    );
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: '' });
  });

  it('answers not ok, saying what is in force, when the change cannot be made', async () => {
    const { runs, runner, mechanism } = setup();
    void runner.trigger(job, occurrence);
    grantAndStart(runs, 'tok-1', { ioBytesPerSec: 0, cpuPercent: 40 });
    mechanism.enforcers[0].failing.add('pause');
    const ack = await runner.handleCommand(budgetCommand('tok-1', 40, true));
    assert.deepEqual(ack, { ok: false, message: 'cannot pause: /fake/file (EIO); in force: cpu 40% of a core' });
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: '' });
  });

  it('acknowledges a budget for a token no job holds, and applies it should the grant come after it', async () => {
    const { runs, runner, mechanism } = setup();
    void runner.trigger(job, occurrence);
    assert.deepEqual(await runner.handleCommand(budgetCommand('tok-late', 10, true)), {
      ok: true,
      message: 'no job runs under this token',
    });
    grantAndStart(runs, 'tok-late', { ioBytesPerSec: 0, cpuPercent: 80 });
    await new Promise((resolve) => setImmediate(resolve)); // the change queued at the grant runs after the start
    assert.deepEqual(mechanism.enforcers[0].calls, ['apply cpu=80 io=0', 'apply cpu=10 io=0', 'pause']);
    runs.calls[0].finish({ status: 'succeeded', exitCode: 0, message: '' });
  });

  it('lets a paused job go when it is stopped, removes its cgroup at the end, and refuses changes after', async () => {
    const { runs, runner, mechanism } = setup();
    void runner.trigger(job, occurrence);
    grantAndStart(runs, 'tok-1');
    await runner.handleCommand(budgetCommand('tok-1', 0, true));
    const control = runs.calls[0].options.control!;
    control.stopping();
    assert.deepEqual((await runner.handleCommand(budgetCommand('tok-1', 0, false))).ok, false);
    await control.ended();
    assert.deepEqual(mechanism.enforcers[0].calls, ['apply cpu=0 io=0', 'pause', 'release', 'close']);
    runs.calls[0].finish({ status: 'revoked', exitCode: 75, message: '' });
  });

  it('acknowledges grant notices for this VM', () => {
    const { runner } = setup();
    const ack = runner.handleCommand({
      commandId: 'c3',
      action: 'granted',
      granted: { token: token({ kind: 'TOKEN_KIND_HYPERVISOR' }) },
    });
    assert.deepEqual(ack, { ok: true, message: 'noted' });
  });

  it('logs a skipped run as an error naming the job and its window', async () => {
    const { runs, runner, lines } = setup();
    const done = runner.trigger(job, occurrence)!;
    runs.calls[0].finish({ status: 'skipped', exitCode: 75, message: 'skipped: coordinator unreachable' });
    await done;
    const err = lines.find((l) => l.level === 'error');
    assert.ok(err);
    assert.equal(err.job, 'nightly');
    assert.match(
      String(err.msg),
      /job skipped: no token before its window closed \(window 2026-01-05T02:00:00\.000Z \+ 1h\)/,
    );
  });

  it('on shutdown stops every run and waits for them, and starts no more', async () => {
    const { runs, runner } = setup();
    void runner.trigger(job, occurrence);
    void runner.trigger({ ...job, name: 'other' }, occurrence);
    await runner.shutdown('SIGTERM');
    assert.deepEqual(
      runs.calls.map((c) => c.stopReason?.kind),
      ['shutdown', 'shutdown'],
    );
    assert.deepEqual(runner.runningJobs(), []);
    assert.equal(runner.trigger(job, occurrence), undefined);
  });
});

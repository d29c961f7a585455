import { strict as assert } from 'node:assert';
import type { v1 } from '../../../../../proto';
import { BackupUsage } from '../../../../../common/backup-run/budget/backup-usage';
import { RunBudget } from '../../../../../common/backup-run/budget/run-budget';
import { runGuarded } from '../../../../../common/backup-run/guarded-run';
import { captureLog, FakeChild, FakeTokenClient, fakeSpawner, token } from '../guarded-run-fakes';
import { FakeMechanism } from './fake-enforcer';
import { FakeProc } from './fake-proc';

/** A child whose watchdog reports when the test says so. */
class ChildWithWatchdog extends FakeChild {
  watchdogPid?: number;
  readonly watchdogReady: Promise<void>;
  report!: () => void;
  constructor() {
    super(['restic']);
    this.watchdogReady = new Promise((resolve) => (this.report = () => ((this.watchdogPid = 4243), resolve())));
  }
}

function setup(mechanism = new FakeMechanism()) {
  const reports: v1.BudgetReport[] = [];
  const usage = new BackupUsage();
  const { log, lines } = captureLog();
  const budget = new RunBudget({ mechanism, log, usage, onReport: (r) => reports.push(r) });
  return { mechanism, reports, usage, budget, lines };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("a backup run's budget", () => {
  it('keeps a budget asked for before the start, and starts the command under it', async () => {
    const { mechanism, budget, reports } = setup();
    assert.deepEqual(await budget.set({ budget: { cpuPercent: 10, ioBytesPerSec: 0 }, paused: false }), {
      ok: true,
      message: 'cpu 10% of a core from the start of the command',
    });
    budget.started(new FakeChild(['restic']), token({ budget: { cpuPercent: 90, ioBytesPerSec: 0 } }));
    assert.deepEqual(mechanism.enforcers[0].calls, ['apply cpu=10 io=0']);
    assert.equal(reports[0].budget?.cpuPercent, 10);
  });

  it('waits for the watchdog to be known before pausing, so that it is not stopped with the rest', async () => {
    const { mechanism, budget, reports } = setup();
    const child = new ChildWithWatchdog();
    budget.started(child, token());
    const e = mechanism.enforcers[0];
    const pausing = budget.set({ budget: { cpuPercent: 0, ioBytesPerSec: 0 }, paused: true });
    await tick();
    assert.deepEqual(e.calls, ['apply cpu=0 io=0'], 'not paused before the watchdog reported');
    child.report();
    assert.equal((await pausing).ok, true);
    assert.deepEqual(e.calls, ['apply cpu=0 io=0', 'pause']);
    assert.equal(e.group.exempt(), 4243);
    assert.deepEqual(
      reports.map((r) => r.paused),
      [false, true],
    );
  });

  it('carries out changes one at a time, in the order they came', async () => {
    const { mechanism, budget } = setup();
    const child = new ChildWithWatchdog();
    budget.started(child, token());
    const answers = [
      budget.set({ budget: { cpuPercent: 0, ioBytesPerSec: 0 }, paused: true }),
      budget.set({ budget: { cpuPercent: 30, ioBytesPerSec: 0 }, paused: false }),
    ];
    child.report();
    await Promise.all(answers);
    assert.deepEqual(mechanism.enforcers[0].calls, ['apply cpu=0 io=0', 'pause', 'apply cpu=30 io=0', 'resume']);
  });

  it('sends no report for a command run without a token, but still counts what it uses', async () => {
    const { mechanism, budget, reports, usage } = setup();
    budget.started(new FakeChild(['restic']), undefined);
    mechanism.enforcers[0].used = { cpuSeconds: 4, ioBytes: 100 };
    assert.deepEqual(reports, []);
    assert.deepEqual(usage.total(), { cpuSeconds: 4, ioBytes: 100 });
    await budget.ended();
    mechanism.enforcers[0].used = { cpuSeconds: 9, ioBytes: 900 };
    assert.deepEqual(usage.total(), { cpuSeconds: 4, ioBytes: 100 }, 'kept as it was when the run ended');
  });

  it('uses the fallback mechanism when the group cannot be put in a cgroup, and says so in the report', () => {
    const mechanism = new FakeMechanism('CGROUP_V2', '');
    mechanism.refuse = true;
    const fallback = new FakeMechanism('SIGNALS', '');
    mechanism.fallback = fallback;
    const { budget, reports, lines } = setup(mechanism);
    budget.started(new FakeChild(['restic']), token());
    assert.equal(fallback.enforcers.length, 1);
    assert.deepEqual(
      [reports[0].enforcement, reports[0].detail],
      [
        'ENFORCEMENT_SIGNALS',
        'fake cgroup /x; CGROUP_V2 could not take this backup (cannot create the cgroup: /fake/headroom-1-2 (EACCES))',
      ],
    );
    assert.ok(
      lines.some((l) => l.level === 'warn' && l.msg === 'could not use CGROUP_V2 for the backup; using SIGNALS'),
    );
  });

  it('answers not ok when the backup runs without enforcement or is over', async () => {
    const mechanism = new FakeMechanism();
    mechanism.refuse = true;
    const { budget } = setup(mechanism);
    budget.started(new FakeChild(['restic']), token());
    assert.deepEqual(await budget.set({ budget: { cpuPercent: 5, ioBytesPerSec: 0 }, paused: false }), {
      ok: false,
      message: 'this backup runs without budget enforcement (see the agent log)',
    });
    await budget.ended();
    assert.deepEqual(await budget.set({ budget: { cpuPercent: 5, ioBytesPerSec: 0 }, paused: false }), {
      ok: false,
      message: 'the backup is over',
    });
  });

  it('is put on the command right at its spawn by the guarded run, let go after the SIGTERM of a revoke, and closed at the end', async () => {
    const client = new FakeTokenClient();
    client.onAcquire = (call) => call.grant(token({ budget: { cpuPercent: 25, ioBytesPerSec: 0 } }));
    const spawner = fakeSpawner();
    const { mechanism, budget } = setup();
    const journal: string[] = [];
    mechanism.journal = journal;
    const controller = new AbortController();
    const done = runGuarded({
      client: client.asClient(),
      request: { kind: 'TOKEN_KIND_GUEST', host: 'h', vm: 'v', job: 'nightly', expectedDurationMs: 60_000 },
      argv: ['restic'],
      log: captureLog().log,
      clock: { now: () => Date.now() },
      spawn: (argv, options) => {
        const child = spawner.spawn(argv, options);
        const stop = child.stop.bind(child);
        child.stop = (graceMs) => {
          if (child.stops.length === 0) journal.push('SIGTERM');
          return stop(graceMs);
        };
        return child;
      },
      signal: controller.signal,
      proc: new FakeProc(),
      control: budget,
      hooks: { onStarted: () => journal.push('started') },
    });
    await tick();
    await budget.set({ budget: { cpuPercent: 25, ioBytesPerSec: 0 }, paused: true });
    controller.abort({ kind: 'revoke', reason: 'window closed' });
    await done;
    assert.deepEqual(journal, ['apply cpu=25 io=0', 'started', 'pause', 'SIGTERM', 'release', 'close']);
  });
});

import { WAIT_THRESHOLDS_OFF } from '../../helpers/wait-signals';
import { strict as assert } from 'node:assert';
import type { Usage } from '../../../common/backup-run/budget/enforcer';
import { ManualClock } from '../../../common/util/clock';
import type { LoadCollector } from '../../../common/backup-run/load-collector';
import { describeThresholds, HostBudget, hostControlPolicy } from '../../../host-backup/host-budget';
import type { CopyControl } from '../../../host-backup/hypervisor/copy-control';
import { DEFAULT_POLICY, type HostPolicy } from '../../../coordinator/domain/policy';
import type { v1 } from '../../../proto';
import { waitFor } from '../../helpers/wait';
import { captureLog, FakeChild, token } from '../common/backup-run/guarded-run-fakes';
import { FakeMechanism } from '../common/backup-run/budget/fake-enforcer';

const wire = (p: Partial<HostPolicy> & Record<string, unknown> = {}) =>
  ({ ...DEFAULT_POLICY, ...p }) as unknown as v1.Policy__Output;

/** Host load samples, one per call, in LoadReport's units; the clock moves 10 s per sample. */
class FakeCollector implements LoadCollector {
  samples = 0;
  backupUsage?: () => Usage;
  constructor(
    private readonly clock: ManualClock,
    private readonly cpu: (n: number) => number,
  ) {}
  async sample(): Promise<v1.LoadReport> {
    this.clock.advance(10_000);
    const backup = this.backupUsage?.();
    return {
      cpuPercent: this.cpu(this.samples++),
      backupCpuPercent: backup ? backup.cpuSeconds : 0,
      diskReadBytesPerSec: 0,
      diskWriteBytesPerSec: 0,
      backupIoBytesPerSec: 0,
    };
  }
}

function setup(
  o: {
    cpu?: (n: number) => number;
    fetchPolicy?: () => Promise<v1.Policy__Output>;
    limits?: { cpuPercent: number; ioBytesPerSec: number };
    copy?: CopyControl;
  } = {},
) {
  const clock = new ManualClock();
  const mechanism = new FakeMechanism('SIGNALS', 'cgroup v2: not mounted; cgroup v1: not mounted');
  const events: { event: string; data: Record<string, any>; text: string }[] = [];
  const collector = new FakeCollector(clock, o.cpu ?? (() => 10));
  const control = new HostBudget({
    host: 'host-a',
    mechanism,
    limits: o.limits ?? { cpuPercent: 0, ioBytesPerSec: 0 },
    fetchPolicy: o.fetchPolicy ?? (async () => wire({ reportIntervalMs: 5 })),
    clock,
    now: () => clock.now(),
    formatTime: () => '01:02:03',
    log: captureLog().log,
    emit: (event, data, text) => events.push({ event, data, text }),
    copy: o.copy && { control: o.copy, speedBy: "QEMU's job speed", pauseBy: "QEMU's block-job-pause" },
    collector: (backupUsage) => {
      collector.backupUsage = backupUsage;
      return collector;
    },
  });
  const child = new FakeChild(['vzdump']);
  return { clock, mechanism, events, collector, control, child };
}

describe('ctl: host-backup budget', () => {
  it("applies the policy's thresholds and reduced budget, but not its budget for guest tokens that carry none", () => {
    const p = hostControlPolicy(
      wire({
        reportIntervalMs: 2_000,
        pauseAboveCpuPercent: 70,
        budgetCpuPercent: 60,
        budgetIoBytesPerSec: 5,
        fieldFromTheFuture: 40,
      }),
    );
    assert.equal(p.reportIntervalMs, 2_000);
    assert.equal(p.pauseAboveCpuPercent, 70);
    assert.equal(p.throttledCpuPercent, DEFAULT_POLICY.throttledCpuPercent);
    assert.equal(p.budgetCpuPercent, 0, "the full budget is the token's");
    assert.equal(p.budgetIoBytesPerSec, 0);
    assert.equal('fieldFromTheFuture' in p, false, 'only the fields of a host policy');
    const partial = hostControlPolicy({ reportIntervalMs: 3_000 } as unknown as v1.Policy__Output);
    assert.equal(
      partial.pauseAboveCpuPercent,
      DEFAULT_POLICY.pauseAboveCpuPercent,
      'a field the coordinator did not send takes its default',
    );
  });

  it('describes the thresholds that are on, the PSI ones first', () => {
    assert.equal(
      describeThresholds({ ...DEFAULT_POLICY }),
      'where the host reports PSI, I/O pressure: throttle from 10%, pause from 25%, full again below 5%; ' +
        'CPU pressure: throttle from 20%, pause from 40%, full again below 10%; ' +
        'memory pressure: throttle from 5%, pause from 15%, full again below 2%; ' +
        'else disk await: throttle from 20 ms, pause from 50 ms, full again below 10 ms; ' +
        'foreground CPU: throttle from 60%, pause from 85%, full again below 50%',
    );
    const fallbackOnly = { ...DEFAULT_POLICY, ...WAIT_THRESHOLDS_OFF };
    assert.equal(
      describeThresholds({
        ...fallbackOnly,
        throttleAboveCpuPercent: 0,
        pauseAboveCpuPercent: 0,
        pauseAboveIoBytesPerSec: 32 * 1024 * 1024,
        resumeBelowIoBytesPerSec: 8 * 1024 * 1024,
      }),
      'foreground disk I/O: pause from 32.0 MiB/s, full again below 8.0 MiB/s',
    );
    assert.match(
      describeThresholds({ ...fallbackOnly, throttleAboveCpuPercent: 0, pauseAboveCpuPercent: 0 }),
      /^no thresholds set/,
    );
  });

  it("starts the command on the tighter of the token's budget and the local limits, and names the mechanism", async () => {
    const { mechanism, events, control, child } = setup({ limits: { cpuPercent: 25, ioBytesPerSec: 0 } });
    control.started(
      child,
      token({ kind: 'TOKEN_KIND_HYPERVISOR', budget: { cpuPercent: 50, ioBytesPerSec: 20_000_000 } }),
    );
    assert.deepEqual(mechanism.enforcers[0].calls, ['apply cpu=25 io=20000000']);
    const budget = events.find((e) => e.event === 'budget')!;
    assert.equal(budget.data.enforcement, 'SIGNALS');
    assert.match(
      budget.text,
      /^budget: cpu 25% of a core, io 20\.0 MB\/s \(the token's: cpu 50% of a core, io 20\.0 MB\/s, capped by --cpu-limit 25\), enforced with SIGNALS \(.*cgroup v1: not mounted\)$/,
    );
    child.exit(0);
    control.stopping();
    await control.ended();
  });

  it("pauses the command when the host's foreground load passes the pause threshold, and resumes it once calm for the dwell time", async () => {
    // Samples 0-1 calm, 2-3 busy, then calm: each sample is 10 s on the clock, the dwell 30 s.
    const { mechanism, events, control, child, collector } = setup({ cpu: (n) => (n === 2 || n === 3 ? 95 : 10) });
    control.started(child, token({ kind: 'TOKEN_KIND_HYPERVISOR' }));
    await waitFor(() => events.filter((e) => e.event === 'budget-change').length >= 2, 5_000, 'a pause and a resume');
    control.stopping();
    const changes = events.filter((e) => e.event === 'budget-change');
    assert.equal(
      changes[0].text,
      '01:02:03 host busy: foreground cpu 95% >= 85%: now paused (cpu 25% of a core, io 10.5 MB/s once resumed) (SIGNALS)',
    );
    assert.match(changes[1].text, /^01:02:03 host calmer for 30s: foreground cpu 10%: now no limits \(SIGNALS\)$/);
    assert.deepEqual(mechanism.enforcers[0].calls, [
      'apply cpu=0 io=0',
      'apply cpu=25 io=10485760',
      'pause',
      'apply cpu=0 io=0',
      'resume',
      'release',
    ]);
    assert.ok(
      events.some(
        (e) =>
          e.event === 'controlling' &&
          /every 5ms: where the host reports PSI, .*; foreground CPU: throttle from 60%/.test(e.text),
      ),
    );
    const samples = collector.samples;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(collector.samples, samples, 'no sampling once the command is being stopped');
    child.exit(143);
    await control.ended();
  });

  it('with the copy outside the command (QEMU), holds the copy to the I/O budget and pauses it, not the command', async () => {
    const calls: string[] = [];
    let copied = 0;
    const copy: CopyControl = {
      setSpeed: async (b) => void calls.push(`speed ${b}`),
      pause: async () => void calls.push('pause'),
      resume: async () => void calls.push('resume'),
      progress: async () => ({ done: (copied += 1000), total: 1e9 }),
    };
    const { mechanism, events, control, child, collector } = setup({
      cpu: (n) => (n === 2 || n === 3 ? 95 : 10),
      copy,
    });
    control.started(
      child,
      token({ kind: 'TOKEN_KIND_HYPERVISOR', budget: { cpuPercent: 0, ioBytesPerSec: 20_000_000 } }),
    );
    await waitFor(() => events.filter((e) => e.event === 'budget-change').length >= 2, 5_000, 'a pause and a resume');
    control.stopping();
    const texts = events.map((e) => e.text);
    assert.ok(texts.includes("copy limited to 19.1 MiB/s by QEMU's job speed (the token's budget)"), texts.join('\n'));
    const changes = events.filter((e) => e.event === 'budget-change');
    assert.match(
      changes[0].text,
      /now cpu 25% of a core, io 10\.5 MB\/s \(SIGNALS\); copy paused by the load controller: host busy: foreground cpu 95% >= 85% \(QEMU's block-job-pause\)$/,
    );
    assert.match(
      changes[1].text,
      /; copy limited to 19\.1 MiB\/s by QEMU's job speed \(the load controller: host calmer/,
    );
    assert.deepEqual(calls, ['speed 20000000', 'speed 10485760', 'pause', 'speed 20000000', 'resume']);
    assert.ok(!mechanism.enforcers[0].calls.includes('pause'), 'qmp-backup itself is not paused: it carries the pause');
    assert.ok(collector.backupUsage!().ioBytes > 0, "what QEMU copied is the backup's I/O, not foreground load");
    child.exit(143);
    await control.ended();
  });

  it("takes the command's own usage out of the host's load: its own work does not throttle it", async () => {
    // The host is at 95 %, all of it the command's own (as backupCpuPercent, from the enforcer's usage).
    const { mechanism, events, control, child, collector } = setup({ cpu: () => 95 });
    control.started(child, token({ kind: 'TOKEN_KIND_HYPERVISOR' }));
    mechanism.enforcers[0].used = { cpuSeconds: 95, ioBytes: 0 };
    await waitFor(() => collector.samples >= 4, 5_000, 'four samples');
    control.stopping();
    assert.deepEqual(
      events.filter((e) => e.event === 'budget-change'),
      [],
    );
    child.exit(143);
    await control.ended();
  });

  it('keeps the budget and says so when the host policy cannot be read', async () => {
    const refused = new Error('GetPolicy: PERMISSION_DENIED: not an admin');
    const { mechanism, events, control, child, collector } = setup({
      limits: { cpuPercent: 30, ioBytesPerSec: 0 },
      fetchPolicy: () => Promise.reject(refused),
    });
    control.started(child, token({ kind: 'TOKEN_KIND_HYPERVISOR' }));
    await waitFor(() => events.some((e) => e.event === 'uncontrolled'), 1_000, 'the notice');
    const notice = events.find((e) => e.event === 'uncontrolled')!;
    assert.match(
      notice.text,
      /^could not read the policy of host-a \(GetPolicy: PERMISSION_DENIED: not an admin\): the command keeps its budget/,
    );
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(collector.samples, 0);
    assert.deepEqual(mechanism.enforcers[0].calls, ['apply cpu=30 io=0']);
    child.exit(0);
    control.stopping();
    await control.ended();
  });
});

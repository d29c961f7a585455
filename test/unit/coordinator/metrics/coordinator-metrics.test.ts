/** The metrics a real coordinator (on a real SQLite file, a manual clock) exposes after known grants and releases. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ManualClock } from '../../../../common/util/clock';
import { createLogger } from '../../../../common/util/log';
import type { Lease } from '../../../../coordinator/domain/lease';
import type { TargetLimits } from '../../../../coordinator/domain/targets';
import { CoordinatorMetrics, MAX_VMS } from '../../../../coordinator/metrics/coordinator-metrics';
import type { PlanView } from '../../../../coordinator/planning/plan-view';
import type { AgentState } from '../../../../coordinator/service/agent-registry';
import { Coordinator, type Waiter } from '../../../../coordinator/service/coordinator';
import { SqliteStore } from '../../../../coordinator/store/sqlite-store';
import { T0, counterIds, req } from '../domain/fixtures';

async function setup(
  agents: AgentState[] = [],
  plan?: Partial<PlanView>,
  dbPath?: string,
  targets: TargetLimits[] = [],
) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-metrics-'));
  const store = new SqliteStore(dbPath ?? path.join(dir, 'h.db'), 'normal');
  const clock = new ManualClock(T0);
  const log = createLogger({ level: 'error' });
  const coordinator = await Coordinator.open({
    store,
    clock,
    ids: counterIds(),
    log,
    defaultHost: 'h1',
    lessorOptions: { targets },
  });
  const metrics = new CoordinatorMetrics({
    coordinator,
    agents: { list: () => agents },
    plans: { current: () => plan as PlanView | undefined },
    placement: { vms: () => [], nameOf: (vm) => (vm === 'uuid-1' ? 'web-1' : undefined) },
    host: 'h1',
    lastSuccesses: store.lastSuccesses(),
  });
  const acquire = (input: Parameters<typeof req>[0]) =>
    new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        queued: () => {},
        granted: resolve,
        denied: (r) => reject(new Error(r)),
        failed: reject,
      };
      void coordinator.acquire(req(input), waiter);
    });
  const lines = async () => (await metrics.scrape()).body.split('\n');
  /** The value of one series of the exposition, or undefined. */
  const value = async (series: string) => {
    const line = (await lines()).find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const close = async () => {
    metrics.close();
    await coordinator.stop();
    store.close();
  };
  return { coordinator, clock, acquire, value, lines, metrics, close, store };
}

describe('coordinator metrics', () => {
  it('counts grants, waits, releases by outcome, bytes, durations and the last success of each VM and job', async () => {
    const { coordinator, clock, acquire, value, close } = await setup();
    const first = await acquire({ kind: 'GUEST', vm: 'uuid-1', job: 'nightly' });
    assert.equal(await value('headroom_tokens_active{host="h1",kind="guest"}'), 1);
    // A second GUEST of the same VM waits for the first (one backup per VM at a time).
    const second = acquire({ kind: 'GUEST', vm: 'uuid-1', job: 'weekly' });
    await new Promise((r) => setImmediate(r));
    assert.equal(await value('headroom_queue_length{host="h1",kind="guest"}'), 1);
    clock.advance(90_000);
    await coordinator.release(first.tokenId, first.fencing, {
      success: true,
      bytes: 5_000,
      durationMs: 90_000,
      exitCode: 0,
      message: '',
    });
    const next = await second;
    await coordinator.release(next.tokenId, next.fencing, { success: false, durationMs: 1, exitCode: 2, message: 'x' });

    const run = 'host="h1",kind="guest",vm="web-1"';
    assert.equal(await value(`headroom_grants_total{host="h1",kind="guest",reason="admitted"}`), 2);
    assert.equal(await value(`headroom_backup_runs_total{${run},backup_job="nightly",outcome="success"}`), 1);
    assert.equal(await value(`headroom_backup_runs_total{${run},backup_job="weekly",outcome="failure"}`), 1);
    assert.equal(await value(`headroom_backup_written_bytes_total{${run},backup_job="nightly"}`), 5_000);
    assert.equal(await value(`headroom_backup_duration_seconds_sum{${run},backup_job="nightly"}`), 90);
    assert.equal(
      await value(`headroom_backup_last_success_timestamp_seconds{${run},backup_job="nightly"}`),
      (T0 + 90_000) / 1000,
    );
    assert.equal(await value(`headroom_backup_last_success_timestamp_seconds{${run},backup_job="weekly"}`), undefined);
    assert.equal(await value('headroom_token_wait_seconds_count{host="h1",kind="guest"}'), 2);
    assert.equal(await value('headroom_token_wait_seconds_sum{host="h1",kind="guest"}'), 90);
    assert.equal(await value('headroom_tokens_active{host="h1",kind="guest"}'), 0);
    assert.equal(await value('headroom_store_writable'), 1);
    await close();
  });

  it('reads the last success from the store at start, so that it survives a restart', async () => {
    const first = await setup();
    const lease = await first.acquire({ kind: 'HYPERVISOR', vm: 'vm9', job: 'disk' });
    await first.coordinator.release(lease.tokenId, lease.fencing, {
      success: true,
      durationMs: 5,
      exitCode: 0,
      message: '',
    });
    await first.close();
    const second = await setup([], undefined, first.store.path);
    assert.equal(
      await second.value(
        'headroom_backup_last_success_timestamp_seconds{host="h1",kind="hypervisor",vm="vm9",backup_job="disk"}',
      ),
      T0 / 1000,
    );
    await second.close();
  });

  it("reports the VMs' foreground load, budgets in force, paused backups and the plan's left-out runs", async () => {
    const agents: AgentState[] = [];
    const { acquire, value, close } = await setup(agents, {
      unplaced: [{ vm: 'vm3', job: 'nightly', kind: 'GUEST', reason: 'no room', earliestStart: 0, windowEnd: 0 }],
    });
    const lease = await acquire({ kind: 'GUEST', vm: 'vm2', job: 'nightly' });
    agents.push({
      record: { vm: 'vm2', host: 'h1', agentVersion: 't', hostname: 'vm2', jobs: [], lastHelloAt: T0 },
      connected: true,
      lastLoad: {
        cpuPercent: 70,
        backupCpuPercent: 20,
        diskReadBytesPerSec: 300,
        diskWriteBytesPerSec: 200,
        backupIoBytesPerSec: 100,
      },
      budgets: new Map([
        [lease.tokenId, { tokenId: lease.tokenId, budget: { cpuPercent: 25, ioBytesPerSec: 1_000 }, paused: true }],
      ]),
    });
    const run = 'host="h1",kind="guest",vm="vm2",backup_job="nightly"';
    assert.equal(await value('headroom_vm_cpu_percent{host="h1",vm="vm2"}'), 50);
    assert.equal(await value('headroom_vm_io_bytes_per_second{host="h1",vm="vm2"}'), 400);
    assert.equal(await value(`headroom_backup_budget_cpu_percent{${run}}`), 25);
    assert.equal(await value(`headroom_backup_budget_io_bytes_per_second{${run}}`), 1_000);
    assert.equal(await value(`headroom_backup_paused{${run}}`), 1);
    assert.equal(await value('headroom_plan_left_out_runs{host="h1",kind="guest",vm="vm3",backup_job="nightly"}'), 1);
    await close();
  });

  it("reports each shared target's tokens on every host, its limits and the requests waiting for it", async () => {
    const MIB = 1024 * 1024;
    const { coordinator, acquire, value, lines, close } = await setup([], undefined, undefined, [
      { name: 'pbs', maxConcurrent: 1, ioBytesPerSec: 0 },
      { name: 'nas', maxConcurrent: 4, ioBytesPerSec: 120 * MIB },
    ]);
    const onPbs = await acquire({ kind: 'GUEST', vm: 'vm1', target: 'pbs' });
    // Another host's backup to the same target waits for h1's: the target is full.
    const waiting = acquire({ kind: 'HYPERVISOR', vm: 'vm2', host: 'h2', target: 'pbs' });
    // Without an I/O budget of its kind, a token on nas is counted at its fair share: 120 MiB/s / 4.
    await acquire({ kind: 'GUEST', vm: 'vm3', target: 'nas' });
    await new Promise((r) => setImmediate(r));
    assert.equal(await value('headroom_target_active_tokens{target="pbs"}'), 1);
    assert.equal(await value('headroom_target_queue_length{target="pbs"}'), 1);
    assert.equal(await value('headroom_target_max_concurrent{target="pbs"}'), 1);
    assert.equal(await value('headroom_target_io_bytes_per_second{target="pbs"}'), 0);
    assert.equal(
      (await lines()).find((l) => l.startsWith('headroom_target_io_budget_bytes_per_second{target="pbs"}')),
      undefined,
    );
    assert.equal(await value('headroom_target_active_tokens{target="nas"}'), 1);
    assert.equal(await value('headroom_target_queue_length{target="nas"}'), 0);
    assert.equal(await value('headroom_target_max_concurrent{target="nas"}'), 4);
    assert.equal(await value('headroom_target_io_bytes_per_second{target="nas"}'), 30 * MIB);
    assert.equal(await value('headroom_target_io_budget_bytes_per_second{target="nas"}'), 120 * MIB);

    await coordinator.release(onPbs.tokenId, onPbs.fencing, { success: true, durationMs: 1, exitCode: 0, message: '' });
    assert.equal((await waiting).host, 'h2');
    assert.equal(await value('headroom_target_active_tokens{target="pbs"}'), 1);
    assert.equal(await value('headroom_target_queue_length{target="pbs"}'), 0);
    await close();
  });

  it(`gives the VMs beyond the first ${MAX_VMS} one series, vm="other"`, async () => {
    const { coordinator, acquire, value, lines, close } = await setup();
    for (let i = 0; i <= MAX_VMS; i++) {
      const lease = await acquire({ kind: 'GUEST', vm: `vm${i}`, job: 'j' });
      await coordinator.release(lease.tokenId, lease.fencing, {
        success: true,
        durationMs: 1,
        exitCode: 0,
        message: '',
      });
    }
    const series = (await lines()).filter((l) => l.startsWith('headroom_backup_runs_total{'));
    assert.equal(series.length, MAX_VMS + 1);
    assert.equal(
      await value('headroom_backup_runs_total{host="h1",kind="guest",vm="other",backup_job="j",outcome="success"}'),
      1,
    );
    await close();
  });
});

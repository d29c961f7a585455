/**
 * Budget control over real gRPC against a real coordinator process: a fake agent holds a GUEST token for
 * its VM, reports its load on its session, and gets BudgetCommands that throttle, pause and resume its
 * backup; what it reports enforcing is listed by ListAgents.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { type Clients, unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { FakeAgent } from '../../helpers/fake-agent';
import { connectPlain, grant, release } from '../../helpers/token-client';
import { runCtl } from '../ctl/ctl-process';
import { waitFor } from '../../helpers/wait';
import { MEMORY_PRESSURE_OFF, MEMORY_PRESSURE_ON, memoryStalls } from '../../helpers/wait-signals';

const HOST = 'host-a';

async function agentsOf(clients: Clients): Promise<v1.AgentInfo__Output[]> {
  return (await unary(clients.admin.ListAgents.bind(clients.admin), { host: HOST })).agents;
}

describe('budget control over an agent session', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const agents: FakeAgent[] = [];

  const agent = async (vm: string) => {
    const a = new FakeAgent(clients, vm);
    agents.push(a);
    await a.connected();
    return a;
  };

  before(async () => {
    coordinator = await startCoordinator({ host: HOST });
    clients = connectPlain(coordinator.address);
    // Low thresholds and no dwell time, as a test of the real agent's enforcement would set them.
    await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      throttleAboveCpuPercent: 30,
      pauseAboveCpuPercent: 60,
      resumeBelowCpuPercent: 20,
      budgetCpuPercent: 80,
      throttledCpuPercent: 20,
      throttledIoBytesPerSec: 0,
      budgetDwellMs: 0,
    });
  });

  afterEach(() => {
    for (const a of agents.splice(0)) a.close();
  });

  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });

  it('throttles, pauses and resumes a running guest backup as its VM reports rising and falling load', async () => {
    const vm = await agent('vm-busy');
    const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-busy', job: 'restic' });

    // The token carries the host's budget from its grant: a quiet VM changes nothing.
    assert.deepEqual(token.budget, { cpuPercent: 80, ioBytesPerSec: 0 });
    vm.load(10);
    vm.load(15);
    vm.load(45);
    assert.deepEqual(await vm.nextBudget(), {
      tokenId: token.tokenId,
      budget: { cpuPercent: 20, ioBytesPerSec: 0 },
      paused: false,
      reason: 'VM busy: foreground cpu 45% >= 30%',
    });
    vm.load(90, { backupCpuPercent: 5 });
    const paused = await vm.nextBudget();
    assert.deepEqual(
      [paused.paused, paused.budget, paused.reason],
      [true, { cpuPercent: 20, ioBytesPerSec: 0 }, 'VM busy: foreground cpu 85% >= 60%'],
    );
    vm.load(10);
    const resumed = await vm.nextBudget();
    assert.deepEqual([resumed.paused, resumed.budget], [false, { cpuPercent: 80, ioBytesPerSec: 0 }]);
    assert.match(resumed.reason, /^VM calmer for 0s: foreground cpu 10%$/);
    assert.equal(vm.budgetCommandsSoFar(), 3, 'the quiet reports changed nothing');

    assert.match(
      coordinator.log(),
      /INFO  backup budget changed vm=vm-busy token=\S+ job=restic from="cpu 20%" to="paused \(cpu 20% when resumed\)" reason="VM busy: foreground cpu 85% >= 60%"\n/,
    );
    await release(clients, token);
  });

  it("throttles a VM's running backup by its own pressure thresholds, and another VM's by the host's", async () => {
    const setPolicy = (req: v1.SetPolicyRequest) => unary(clients.admin.SetPolicy.bind(clients.admin), req);
    // Memory `full` thresholds on for the host; the VM near capacity gets higher ones of its own.
    await setPolicy({ host: HOST, ...MEMORY_PRESSURE_ON });
    await setPolicy({
      host: HOST,
      vm: 'vm-own',
      throttleAboveMemoryPressurePercent: 20,
      pauseAboveMemoryPressurePercent: 40,
    });
    try {
      const own = await agent('vm-own');
      const other = await agent('vm-other');
      const ownToken = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-own', job: 'restic' });
      const otherToken = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-other', job: 'restic' });
      other.load(10, memoryStalls(8));
      assert.equal((await other.nextBudget()).reason, 'VM busy: memory pressure 8.0% >= 5.0%');
      // Reports on one session are taken in order: the first budget command answers the second report.
      own.load(10, memoryStalls(8));
      own.load(10, memoryStalls(25));
      const throttled = await own.nextBudget();
      assert.deepEqual(
        [throttled.tokenId, throttled.reason],
        [ownToken.tokenId, 'VM busy: memory pressure 25.0% >= 20.0%'],
        'not throttled at 8 %, under its own threshold',
      );
      await release(clients, ownToken);
      await release(clients, otherToken);
    } finally {
      await setPolicy({ host: HOST, vm: 'vm-own', resetVm: true });
      await setPolicy({ host: HOST, ...MEMORY_PRESSURE_OFF });
    }
  });

  it('lists what the agent reports enforcing, until the token ends', async () => {
    const vm = await agent('vm-report');
    const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-report' });
    const report = {
      tokenId: token.tokenId,
      budget: { cpuPercent: 20, ioBytesPerSec: 1024 },
      paused: true,
      enforcement: 'ENFORCEMENT_CGROUP_V1' as const,
      detail: '/sys/fs/cgroup/freezer/headroom/restic',
    };
    vm.report(report);
    // Reports about tokens this VM does not hold are ignored, not fatal.
    vm.report({ ...report, tokenId: 'not-a-token' });
    await waitFor(async () => (await agentsOf(clients)).find((a) => a.vm === 'vm-report')!.budgets.length > 0);
    const listed = (await agentsOf(clients)).find((a) => a.vm === 'vm-report')!;
    assert.deepEqual(listed.budgets, [report]);
    const ctl = await runCtl(['--coordinator', coordinator.address, 'agents', '--host', HOST]);
    assert.equal(ctl.code, 0, ctl.stderr);
    assert.match(ctl.stdout, /\n\nVM\s+BACKUP\s+STATE\s+CPU BUDGET\s+I\/O BUDGET\s+ENFORCED BY\s+DETAIL\n/);
    assert.match(
      ctl.stdout,
      new RegExp(
        `\\nvm-report\\s+${token.tokenId.slice(0, 8)}\\s+paused\\s+0\\.2 core\\s+1\\.0 KiB/s\\s+cgroup v1\\s+/sys/fs/cgroup/freezer/headroom/restic\\n`,
      ),
    );
    const json = JSON.parse((await runCtl(['--coordinator', coordinator.address, 'agents', '--json'])).stdout);
    assert.deepEqual(json.agents.find((a: { vm: string }) => a.vm === 'vm-report').budgets, [report]);

    await release(clients, token);
    assert.deepEqual((await agentsOf(clients)).find((a) => a.vm === 'vm-report')!.budgets, []);
    assert.equal(vm.error, undefined);
  });

  it('throttles instead of pausing a backup whose window ends too soon for a pause', async () => {
    const vm = await agent('vm-late');
    // 2 minutes left in the window, less than the default 5-minute guard.
    const token = await grant(clients, {
      kind: 'TOKEN_KIND_GUEST',
      vm: 'vm-late',
      windowEndUnixMs: Date.now() + 120_000,
      expectedDurationMs: 60_000,
    });
    vm.load(95);
    const command = await vm.nextBudget();
    assert.deepEqual([command.paused, command.budget], [false, { cpuPercent: 20, ioBytesPerSec: 0 }]);
    assert.match(command.reason, /^VM busy: foreground cpu 95% >= 60%; throttled, not paused: its window ends in /);
    await release(clients, token);
  });

  it("leaves the VM's HYPERVISOR backups alone", async () => {
    const vm = await agent('vm-host-backup');
    const hypervisor = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'vm-host-backup' });
    vm.load(95);
    await waitFor(
      async () => (await agentsOf(clients)).find((a) => a.vm === 'vm-host-backup')?.lastLoad?.cpuPercent === 95,
    );
    await release(clients, hypervisor);
    const guest = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-host-backup' });
    vm.load(95);
    // The first budget command this agent gets is about its GUEST backup.
    assert.equal((await vm.nextBudget()).tokenId, guest.tokenId);
    await release(clients, guest);
  });

  it('refuses a budget report with an unknown enforcement, naming the field', async () => {
    const vm = await agent('vm-bad');
    vm.report({ tokenId: 'x', enforcement: 7 as unknown as v1.BudgetReport['enforcement'] });
    await waitFor(() => vm.error !== undefined);
    assert.equal(vm.error!.code, grpc.status.INVALID_ARGUMENT);
    assert.match(vm.error!.details, /^budget\.enforcement: must be one of/);
  });
});

describe('budget control across a coordinator restart', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;

  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });

  it('restates the budget of a backup that was paused when the coordinator died', async () => {
    coordinator = await startCoordinator({ host: HOST });
    clients = connectPlain(coordinator.address);
    await unary(clients.admin.SetPolicy.bind(clients.admin), { host: HOST, budgetDwellMs: 0 });
    let vm = new FakeAgent(clients, 'vm-restart');
    await vm.connected();
    const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-restart' });
    vm.load(95);
    assert.equal((await vm.nextBudget()).paused, true);

    vm.close();
    await coordinator.kill();
    clients.close();
    coordinator = await startCoordinator({ host: HOST, dbPath: coordinator.dbPath });
    clients = connectPlain(coordinator.address);
    vm = new FakeAgent(clients, 'vm-restart');
    await vm.connected();
    // The coordinator cannot know the backup is paused: its first report brings the budget, unpaused.
    vm.load(5);
    const restated = await vm.nextBudget();
    assert.deepEqual([restated.tokenId, restated.paused], [token.tokenId, false]);
    assert.match(restated.reason, /what the agent was told is not known/);
    vm.close();
    await release(clients, token);
  });
});

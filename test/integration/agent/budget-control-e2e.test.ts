/**
 * Issue 4's end-to-end case, everything real: the headroom-agent daemon runs a CPU-bound guest backup
 * under a real coordinator; busy loops on this machine play the VM's own workload, so the agent's load
 * reports (from /proc) show it rising. The coordinator throttles the backup, then pauses it, and resumes
 * it once the workload is gone; the agent enforces each step with the best mechanism this machine has
 * and reports which.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { cpuPercentOver } from '../../helpers/budget-measure';
import { type AgentProcess, onceIn, startAgent, waitFor, writeConfig } from './processes';

const HOST = 'host-a';
const VM = 'vm-e2e';

describe('budget control end to end: real agent, real coordinator, real load', function () {
  this.timeout(90_000);
  let coordinator: RunningCoordinator;
  let clients: ReturnType<typeof connect>;
  let agent: AgentProcess | undefined;
  const workload: ChildProcess[] = [];

  before(async () => {
    coordinator = await startCoordinator({ host: HOST });
    clients = connect(coordinator.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    for (const w of workload.splice(0)) w.kill('SIGKILL');
    await agent?.stop();
    clients?.close();
    await coordinator?.stop();
  });

  /** One busy loop: a core's worth of the VM's own work. */
  const busyLoop = () => {
    const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    workload.push(child);
    return child;
  };

  /** The last BudgetReport seen, for the failure message of a wait that timed out. */
  let last: v1.BudgetReport__Output | undefined;
  const budgetReport = async (): Promise<v1.BudgetReport__Output | undefined> => {
    const { agents } = await unary(clients.admin.ListAgents.bind(clients.admin), { host: HOST });
    last = agents.find((a) => a.vm === VM)?.budgets[0] ?? last;
    return last;
  };
  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      console.error(`last budget report: ${JSON.stringify(last)}\nagent log:\n${agent?.stderr().split('\n').slice(-30).join('\n')}`);
    }
  });

  it('throttles a running guest backup as its VM gets busy, pauses it when the VM is saturated, and resumes it after', async () => {
    const cores = os.cpus().length;
    const oneCore = 100 / cores; // one busy loop, in percent of the whole VM
    // One busy loop crosses the throttle threshold; a loop on every core crosses the pause threshold. The
    // full budget comes back below 40 % of a loop: the test runner, coordinator and agent themselves stay
    // under that on a quiet machine, where a quarter of a loop (12 % of this 2-core VM) was within their noise.
    await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      reportIntervalMs: 1_000,
      resumeBelowCpuPercent: Math.floor(oneCore * 0.4),
      throttleAboveCpuPercent: Math.floor(oneCore / 2),
      pauseAboveCpuPercent: Math.max(Math.floor(oneCore / 2) + 1, Math.round(100 - oneCore / 2)),
      budgetCpuPercent: 60,
      throttledCpuPercent: 10,
      budgetDwellMs: 2_000,
    });
    const pidFile = path.join(tempDir(), 'backup.pid');
    const config = writeConfig(
      [
        `coordinator: ${coordinator.address}`,
        `vm: ${VM}`,
        'jobs:',
        '  - name: cpu-backup',
        `    schedule: "${onceIn(2_000)}"`,
        '    window: 1h',
        '    expectedDuration: 1m',
        `    command: [sh, -c, "echo $$ > ${pidFile}; while :; do :; done"]`,
      ].join('\n'),
    );
    agent = startAgent(['run', '--config', config]);

    // Running at the host's budget, enforced by a mechanism the agent names.
    const first = await waitFor('the backup to run at its full budget', async () => {
      const r = await budgetReport();
      return r && r.budget?.cpuPercent === 60 && !r.paused ? r : undefined;
    }, 20_000);
    assert.ok(['ENFORCEMENT_CGROUP_V2', 'ENFORCEMENT_CGROUP_V1', 'ENFORCEMENT_SIGNALS'].includes(first.enforcement), `mechanism reported: ${first.enforcement}`);
    const pgid = await waitFor('the backup to write its pid', () => (fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) || undefined : undefined));

    busyLoop();
    await waitFor('the backup to be throttled', async () => {
      const r = await budgetReport();
      return r && r.budget?.cpuPercent === 10 && !r.paused ? r : undefined;
    }, 20_000);

    for (let i = 1; i < cores; i++) busyLoop();
    await waitFor('the backup to be paused', async () => ((await budgetReport())?.paused ? true : undefined), 20_000);
    assert.ok((await cpuPercentOver(pgid, 1_500)) < 3, 'a paused backup uses no CPU');

    for (const w of workload.splice(0)) w.kill('SIGKILL');
    await waitFor('the backup to be resumed', async () => {
      const r = await budgetReport();
      return r && !r.paused ? r : undefined;
    }, 30_000);
    assert.ok((await cpuPercentOver(pgid, 1_500)) > 3, 'a resumed backup runs again');
    await waitFor('the backup to get its full budget back', async () => ((await budgetReport())?.budget?.cpuPercent === 60 ? true : undefined), 30_000);
    assert.match(agent.stderr(), /paus/i, "the agent's log says it paused the backup");
  });
});

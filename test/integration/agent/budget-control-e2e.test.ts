/**
 * Issue 4's end-to-end case, everything real: the headroom-agent daemon runs a CPU-bound guest backup
 * under a real coordinator; disk writers on this machine play the VM's own workload, so the agent's load
 * reports (from /proc) show it rising. The coordinator throttles the backup, then pauses it, and resumes
 * it once the workload is gone; the agent enforces each step with the best mechanism this machine has
 * and reports which.
 *
 * The VM's load is its disk, not its CPU: whatever else keeps this machine's CPU busy (other test files,
 * other users) would throttle or pause the backup without our workload and keep it from ever resuming,
 * whereas the disk is all but idle without our writers.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { cpuPercentOver, cpuUsed } from '../../helpers/budget-measure';
import { type AgentProcess, EVERY_OTHER_SECOND, startAgent, waitFor, writeConfig } from './processes';

const HOST = 'host-a';
const VM = 'vm-e2e';
const MiB = 1024 * 1024;

describe('budget control end to end: real agent, real coordinator, real load', function () {
  this.timeout(180_000);
  let coordinator: RunningCoordinator;
  let clients: ReturnType<typeof connect>;
  let agent: AgentProcess | undefined;
  const workload: ChildProcess[] = [];

  before(async () => {
    coordinator = await startCoordinator({ host: HOST });
    clients = connect(coordinator.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    stopWorkload();
    await agent?.stop();
    clients?.close();
    await coordinator?.stop();
  });

  /**
   * A disk writer, bypassing the page cache so that every byte reaches the disk's counters: 8 MiB at a
   * time, with a pause of `restSeconds` after each write (0: as fast as the disk takes them).
   */
  const diskWriter = (file: string, restSeconds: number) => {
    const write = `dd if=/dev/zero of=${file} bs=1M count=8 oflag=direct status=none`;
    const child = spawn('sh', ['-c', `while :; do ${write}; sleep ${restSeconds}; done`], {
      stdio: 'ignore',
      detached: true,
    });
    workload.push(child);
  };
  const stopWorkload = () => {
    for (const w of workload.splice(0)) process.kill(-w.pid!, 'SIGKILL');
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
      console.error(
        `last budget report: ${JSON.stringify(last)}\nagent log:\n${agent?.stderr().split('\n').slice(-30).join('\n')}`,
      );
    }
  });

  it('throttles a running guest backup as its VM gets busy, pauses it when the VM is saturated, and resumes it after', async () => {
    // Thresholds of the VM's foreground disk I/O (the backup's own taken out); CPU thresholds off. A writer
    // that rests a quarter of a second after each 8 MiB writes at most 32 MiB/s: past the throttle threshold,
    // under the pause threshold. A second writer that never rests takes the disk far past the pause threshold.
    await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      reportIntervalMs: 1_000,
      throttleAboveCpuPercent: 0,
      pauseAboveCpuPercent: 0,
      resumeBelowIoBytesPerSec: 4 * MiB,
      throttleAboveIoBytesPerSec: 8 * MiB,
      pauseAboveIoBytesPerSec: 128 * MiB,
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
        `    schedule: "${EVERY_OTHER_SECOND}"`,
        '    window: 1h',
        '    expectedDuration: 1m',
        `    command: [sh, -c, "echo $$ > ${pidFile}; while :; do :; done"]`,
      ].join('\n'),
    );
    agent = startAgent(['run', '--config', config]);

    // Running at the host's budget, enforced by a mechanism the agent names.
    const first = await waitFor(
      'the backup to run at its full budget',
      async () => {
        const r = await budgetReport();
        return r && r.budget?.cpuPercent === 60 && !r.paused ? r : undefined;
      },
      20_000,
    );
    assert.ok(
      ['ENFORCEMENT_CGROUP_V2', 'ENFORCEMENT_CGROUP_V1', 'ENFORCEMENT_SIGNALS'].includes(first.enforcement),
      `mechanism reported: ${first.enforcement}`,
    );
    const pgid = await waitFor('the backup to write its pid', () =>
      fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) || undefined : undefined,
    );

    const dir = tempDir();
    diskWriter(path.join(dir, 'steady'), 0.25);
    await waitFor(
      'the backup to be throttled',
      async () => {
        const r = await budgetReport();
        return r && r.budget?.cpuPercent === 10 && !r.paused ? r : undefined;
      },
      60_000,
    );

    diskWriter(path.join(dir, 'flat-out'), 0);
    await waitFor('the backup to be paused', async () => ((await budgetReport())?.paused ? true : undefined), 60_000);
    assert.ok((await cpuPercentOver(pgid, 1_500)) < 3, 'a paused backup uses no CPU');

    stopWorkload();
    await waitFor(
      'the backup to be resumed',
      async () => {
        const r = await budgetReport();
        return r && !r.paused ? r : undefined;
      },
      90_000,
    );
    await cpuUsed(pgid, 0.2); // a resumed backup runs again
    await waitFor(
      'the backup to get its full budget back',
      async () => ((await budgetReport())?.budget?.cpuPercent === 60 ? true : undefined),
      90_000,
    );
    assert.match(agent.stderr(), /paus/i, "the agent's log says it paused the backup");
  });
});

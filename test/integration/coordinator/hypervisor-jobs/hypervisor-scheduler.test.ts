/**
 * The coordinator's own hypervisor schedule, run by the coordinator: a job with a driver that is due
 * every minute is started at its planned slot as a child process, takes its HYPERVISOR token as the
 * planned run, and is listed among the backup runs; a planned run that fails is run again.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Clients } from '../../../../common/client/connection';
import { unary } from '../../../../common/client/connection';
import type { BackupRun__Output } from '../../../../proto/generated/headroom/v1';
import {
  type RunningCoordinator,
  startCoordinator,
  tempDir,
  TEST_START_POLICY,
} from '../../../helpers/coordinator-process';
import { waitFor } from '../../../helpers/wait';
import { testClients } from '../../ctl/ctl-process';

/** A coordinator whose schedule is one job for vm1 (its YAML flow mapping, after the name). */
async function withJob(dir: string, job: string): Promise<RunningCoordinator> {
  const config = path.join(dir, 'coordinator.yaml');
  fs.writeFileSync(config, [TEST_START_POLICY.trimEnd(), 'hypervisorJobs:', `  - { ${job} }`].join('\n'));
  return startCoordinator({ host: 'host-a', args: ['--config', config] });
}

async function runsOf(clients: Clients): Promise<BackupRun__Output[]> {
  return (await unary(clients.admin.ListBackupRuns.bind(clients.admin), {})).runs;
}

/** The backup runs, once one of them has succeeded. */
async function runsOnceOneSucceeded(clients: Clients, timeoutMs: number): Promise<BackupRun__Output[]> {
  let runs: BackupRun__Output[] = [];
  await waitFor(
    async () => {
      runs = await runsOf(clients);
      return runs.some((r) => r.state === 'BACKUP_RUN_STATE_SUCCEEDED');
    },
    timeoutMs,
    'a planned run to succeed',
  );
  return runs;
}

describe('hypervisor schedule run by the coordinator', function () {
  this.timeout(150_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let dir: string;

  before(async () => {
    dir = tempDir('headroom-scheduler-');
    coordinator = await withJob(
      dir,
      `name: every-minute, vms: [vm1], schedule: "* * * * *", window: 50s, expectedDuration: 5s, driver: command, command: [sh, -c, "echo ran {vm} >> ${dir}/ran"]`,
    );
    clients = testClients(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.kill();
  });

  it('starts the planned run at its slot, under its planned HYPERVISOR token, once', async () => {
    const runs = await runsOnceOneSucceeded(clients, 130_000);
    const run = runs.find((r) => r.state === 'BACKUP_RUN_STATE_SUCCEEDED')!;
    assert.equal(run.job, 'every-minute');
    assert.equal(run.vm, 'vm1');
    // Within the window of the minute's occurrence (its first 50 s), and each occurrence started once.
    assert.ok(new Date(run.startedUnixMs).getUTCSeconds() < 50, new Date(run.startedUnixMs).toISOString());
    const minutes = runs.map((r) => Math.floor(r.startedUnixMs / 60_000));
    assert.equal(new Set(minutes).size, minutes.length, 'one run per occurrence');
    const ended = runs.filter((r) => r.state !== 'BACKUP_RUN_STATE_RUNNING');
    assert.equal(fs.readFileSync(path.join(dir, 'ran'), 'utf8'), 'ran vm1\n'.repeat(ended.length));
    const { events } = await unary(clients.admin.ListHistory.bind(clients.admin), {});
    const granted = events.filter((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' && e.kind === 'TOKEN_KIND_HYPERVISOR');
    assert.ok(
      granted.length >= ended.length && granted.length <= runs.length,
      `${granted.length} grants for ${runs.length} runs`,
    );
    assert.ok(granted.every((g) => g.job === 'every-minute' && g.vm === 'vm1'));
    assert.doesNotMatch(coordinator.log(), /could not start a planned hypervisor backup/);
  });
});

describe('a planned hypervisor backup that fails', function () {
  // The first slot is due within a minute; the scheduler looks every 5 s.
  this.timeout(120_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let marker: string;

  before(async () => {
    const dir = tempDir('headroom-retry-');
    marker = path.join(dir, 'failed-once');
    // Fails the first time (leaving the marker), succeeds after.
    const command = `test -e ${marker} || { touch ${marker}; echo first run fails >&2; exit 3; }`;
    coordinator = await withJob(
      dir,
      `name: dump, vms: [vm1], schedule: "* * * * *", window: 1h, expectedDuration: 5s, driver: command, command: [sh, -c, "${command}"], retries: 1, retryDelay: 1s`,
    );
    clients = testClients(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.kill();
  });

  it('is run again after the retry delay, as the same job, and succeeds', async () => {
    const runs = await runsOnceOneSucceeded(clients, 100_000);
    const [first, second] = [...runs].sort((a, b) => Number(a.startedUnixMs) - Number(b.startedUnixMs));
    assert.deepEqual(
      [first.state, first.exitCode, second.state, second.job],
      ['BACKUP_RUN_STATE_FAILED', 3, 'BACKUP_RUN_STATE_SUCCEEDED', 'dump'],
    );
    assert.ok(Number(second.startedUnixMs) >= Number(first.endedUnixMs) + 1_000, 'not before the retry delay');
    assert.match(coordinator.log(), /retrying a planned hypervisor backup that failed .*attempt=2/);
    assert.ok(fs.existsSync(marker));
  });
});

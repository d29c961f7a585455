/**
 * The coordinator's own hypervisor schedule, run by the coordinator: a job with a driver that is due
 * every minute is started at its planned slot as a child process, takes its HYPERVISOR token as the
 * planned run, and is listed among the backup runs.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Clients } from '../../../common/connection';
import { unary } from '../../../common/connection';
import type { BackupRun__Output } from '../../../proto/generated/headroom/v1';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { testClients } from '../ctl/ctl-process';

describe('hypervisor schedule run by the coordinator', function () {
  this.timeout(150_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let dir: string;

  before(async () => {
    dir = tempDir('headroom-scheduler-');
    const config = path.join(dir, 'coordinator.yaml');
    fs.writeFileSync(
      config,
      [
        'policy: { startBelowCpuPercent: 0, hostStartBelowCpuPercent: 0, minStartGap: 0 }',
        'hypervisorJobs:',
        `  - { name: every-minute, vms: [vm1], schedule: "* * * * *", window: 50s, expectedDuration: 5s, driver: command, command: [sh, -c, "echo ran {vm} >> ${dir}/ran"] }`,
      ].join('\n'),
    );
    coordinator = await startCoordinator({ host: 'host-a', args: ['--config', config] });
    clients = testClients(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.kill();
  });

  it('starts the planned run at its slot, under its planned HYPERVISOR token, once', async () => {
    let runs: BackupRun__Output[] = [];
    await waitFor(async () => {
      runs = (await unary(clients.admin.ListBackupRuns.bind(clients.admin), {})).runs;
      return runs.some((r) => r.state === 'BACKUP_RUN_SUCCEEDED');
    }, 130_000, 'a planned run to succeed');
    const run = runs.find((r) => r.state === 'BACKUP_RUN_SUCCEEDED')!;
    assert.equal(run.job, 'every-minute');
    assert.equal(run.vm, 'vm1');
    // Within the window of the minute's occurrence (its first 50 s), and each occurrence started once.
    assert.ok(new Date(run.startedUnixMs).getUTCSeconds() < 50, new Date(run.startedUnixMs).toISOString());
    const minutes = runs.map((r) => Math.floor(r.startedUnixMs / 60_000));
    assert.equal(new Set(minutes).size, minutes.length, 'one run per occurrence');
    const ended = runs.filter((r) => r.state !== 'BACKUP_RUN_RUNNING');
    assert.equal(fs.readFileSync(path.join(dir, 'ran'), 'utf8'), 'ran vm1\n'.repeat(ended.length));
    const { events } = await unary(clients.admin.ListHistory.bind(clients.admin), {});
    const granted = events.filter((e) => e.type === 'GRANTED' && e.kind === 'HYPERVISOR');
    assert.ok(granted.length >= ended.length && granted.length <= runs.length, `${granted.length} grants for ${runs.length} runs`);
    assert.ok(granted.every((g) => g.job === 'every-minute' && g.vm === 'vm1'));
    assert.doesNotMatch(coordinator.log(), /could not start a planned hypervisor backup/);
  });
});

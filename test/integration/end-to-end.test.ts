/**
 * The three executables together, as real processes over real gRPC: an agent's guest backup, a
 * hypervisor backup through `headroomctl host-backup`, and an agent killed in the middle of its job.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_KILL_GRACE_MS } from '../../common/backup-run/child-process';
import { unary, type Clients } from '../../common/client/connection';
import { CTL_MAIN, type RunningCoordinator, startCoordinator, tempDir } from '../helpers/coordinator-process';
import { connectPlain } from '../helpers/token-client';
import { waitFor } from '../helpers/wait';
import { type AgentProcess, pidAlive, startAgent } from './agent/processes';

/** A command that records its start and end (ms) in `file`, with `sleep` seconds of work between. */
function recorded(file: string, name: string, sleep: number): string[] {
  return [
    'sh',
    '-c',
    `echo "${name} start $(date +%s%3N)" >> ${file}; sleep ${sleep}; echo "${name} end $(date +%s%3N)" >> ${file}`,
  ];
}

function times(file: string, name: string): { start: number; end: number } {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const at = (what: string) => Number(lines.find((l) => l.startsWith(`${name} ${what} `))!.split(' ')[2]);
  return { start: at('start'), end: at('end') };
}

function hostBackup(address: string, vm: string, command: string[]) {
  const child = spawn(
    process.execPath,
    [CTL_MAIN, '--coordinator', address, 'host-backup', '--host', 'host-e2e', '--vm', vm, '--', ...command],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  return { child, exited, stderr: () => stderr };
}

describe('end to end: agent, coordinator and headroomctl as real processes', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const agents: AgentProcess[] = [];
  const leftovers: number[] = [];

  beforeEach(async () => {
    coordinator = await startCoordinator({ host: 'host-e2e', args: ['--lease-ttl', '2s'] });
    clients = connectPlain(coordinator.address);
  });

  afterEach(async () => {
    for (const pid of leftovers.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    clients.close();
    await coordinator.stop();
  });

  it('runs a hypervisor backup only after the guest backup holding the host has finished', async () => {
    const audit = path.join(tempDir(), 'audit.log');
    const agent = startAgent([
      'exec',
      '--coordinator',
      coordinator.address,
      '--vm',
      'vm-guest',
      '--host',
      'host-e2e',
      '--job',
      'restic',
      '--',
      ...recorded(audit, 'guest', 2),
    ]);
    agents.push(agent);
    await waitFor(() => fs.existsSync(audit), 10_000, 'the guest backup to start');
    const hv = hostBackup(coordinator.address, 'vm-other', recorded(audit, 'hypervisor', 0));
    assert.equal(await agent.exited, 0, agent.stderr());
    assert.equal(await hv.exited, 0, hv.stderr());
    const guest = times(audit, 'guest');
    const hypervisor = times(audit, 'hypervisor');
    assert.ok(hypervisor.start >= guest.end, `hypervisor started at ${hypervisor.start}, guest ended at ${guest.end}`);
    const history = await unary(clients.admin.ListHistory.bind(clients.admin), { host: 'host-e2e' });
    assert.deepEqual(
      history.events.filter((e) => e.type !== 'HISTORY_EVENT_TYPE_RENEWED').map((e) => `${e.type} ${e.kind}`),
      [
        'HISTORY_EVENT_TYPE_GRANTED TOKEN_KIND_GUEST',
        'HISTORY_EVENT_TYPE_RELEASED TOKEN_KIND_GUEST',
        'HISTORY_EVENT_TYPE_GRANTED TOKEN_KIND_HYPERVISOR',
        'HISTORY_EVENT_TYPE_RELEASED TOKEN_KIND_HYPERVISOR',
      ],
    );
  });

  it('takes the lease of an agent killed mid-job after its TTL, and serves the next request', async () => {
    const pidFile = path.join(tempDir(), 'job.pid');
    const agent = startAgent([
      'exec',
      '--coordinator',
      coordinator.address,
      '--vm',
      'vm-killed',
      '--host',
      'host-e2e',
      '--job',
      'borg',
      '--',
      'sh',
      '-c',
      `echo $$ > ${pidFile}; exec sleep 60`,
    ]);
    agents.push(agent);
    await waitFor(
      () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n'),
      10_000,
      'the job to start',
    );
    const jobPid = Number(fs.readFileSync(pidFile, 'utf8'));
    leftovers.push(jobPid);
    const [held] = (await unary(clients.admin.ListTokens.bind(clients.admin), { host: 'host-e2e' })).active;
    assert.equal(held.vm, 'vm-killed');

    agent.process.kill('SIGKILL');
    await agent.exited;
    const killedAt = Date.now();
    const hv = hostBackup(coordinator.address, 'vm-next', ['true']);
    assert.equal(await hv.exited, 0, hv.stderr());
    assert.ok(Date.now() - killedAt >= 1_000, 'the next request waited for the lease to expire');
    const history = await unary(clients.admin.ListHistory.bind(clients.admin), { host: 'host-e2e' });
    const types = history.events.filter((e) => e.type !== 'HISTORY_EVENT_TYPE_RENEWED').map((e) => `${e.type} ${e.vm}`);
    assert.deepEqual(types, [
      'HISTORY_EVENT_TYPE_GRANTED vm-killed',
      'HISTORY_EVENT_TYPE_EXPIRED vm-killed',
      'HISTORY_EVENT_TYPE_GRANTED vm-next',
      'HISTORY_EVENT_TYPE_RELEASED vm-next',
    ]);
    // SIGKILL gives the agent no chance to stop its child; the watchdog in the job's process group sees the
    // agent's end of its pipe close and stops the job: SIGTERM, SIGKILL after the kill grace at the latest.
    const graceLeft = killedAt + DEFAULT_KILL_GRACE_MS - Date.now();
    await waitFor(
      () => !pidAlive(jobPid),
      Math.max(0, graceLeft) + 1_000,
      'the orphaned job to be stopped within the kill grace',
    );
  });
});

/**
 * Stopping the coordinator with SIGTERM while an agent is connected, a token is held and an Acquire waits:
 * the process exits 0, the waiting caller hears COORDINATOR_STOPPING (or UNAVAILABLE), never INTERNAL, the
 * coordinator logs no error, and the agent says once that the coordinator is stopping.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, unary } from '../../../common/client/connection';
import { STOP_BOUND_MS } from '../../../coordinator/server';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { acquire, connectPlain, grant } from '../../helpers/token-client';
import { type AgentProcess, idleAgentConfig, startAgent, waitFor } from '../agent/processes';

describe('coordinator: a clean stop on SIGTERM', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let agent: AgentProcess;

  before(async () => {
    coordinator = await startCoordinator({ args: ['--max-guest', '1', '--report-interval', '1s'] });
    clients = connectPlain(coordinator.address);
    const config = idleAgentConfig([
      `coordinator: ${coordinator.address}`,
      'vm: vm-agent',
      `controlSocket: ${path.join(tempDir(), 'agent.sock')}`,
    ]);
    agent = startAgent(['run', '--config', config]);
  });
  after(async () => {
    clients?.close();
    await agent?.stop();
    await coordinator?.kill();
  });

  it('exits 0, tells the waiting caller the coordinator is stopping, logs no error, and the agent says so once', async () => {
    await waitFor('the agent session to be up', () => /session up/.test(agent.stderr()), 15_000);
    await grant(clients, { vm: 'vm-held' });
    const waiting = acquire(clients, { vm: 'vm-waiting' });
    await waitFor('the second acquire to be queued', () => waiting.updates.some((u) => u.queued));

    const exited = new Promise<number | null>((resolve) => coordinator.process.once('exit', (code) => resolve(code)));
    coordinator.process.kill('SIGTERM');
    assert.equal(await exited, 0, coordinator.log());

    const answer = await waiting.done.then(
      (u) => `DENIED ${u.denied?.reason}`,
      (e: grpc.ServiceError) => grpc.status[e.code],
    );
    assert.ok(
      ['DENIED DENY_REASON_COORDINATOR_STOPPING', 'UNAVAILABLE'].includes(answer),
      `the waiting caller got ${answer}`,
    );
    const log = coordinator.log();
    assert.doesNotMatch(log, /ERROR|internal error|stack=/, log);
    assert.match(log, /INFO  stopped\n/);
    assert.equal(log.match(/agent disconnected vm=vm-agent/g)?.length, 1, log);

    await waitFor('the agent to notice', () => /coordinator is stopping/.test(agent.stderr()));
    const losses = agent.stderr().match(/WARN .*(session lost|cannot reach the coordinator).*/g) ?? [];
    assert.deepEqual(losses.length, 1, agent.stderr());
    assert.match(losses[0], /WARN  session lost; reconnecting in the background error="the coordinator is stopping"/);
    assert.doesNotMatch(agent.stderr(), /internal error/);
  });
});

describe('coordinator: a stop held up by a backup run it started', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const dir = tempDir();
  const pidFile = path.join(dir, 'run.pid');

  before(async () => {
    const config = path.join(dir, 'coordinator.yaml');
    // The run's command ignores SIGTERM: headroomctl host-backup waits its kill grace (10 s) before SIGKILL.
    fs.writeFileSync(
      config,
      [
        TEST_START_POLICY.trimEnd(),
        'hypervisorJobs:',
        '  - name: stubborn',
        '    vms: [vm1]',
        '    schedule: "0 3 * * *"',
        '    window: 1h',
        '    expectedDuration: 1m',
        '    driver: command',
        `    command: [sh, -c, "trap '' TERM; echo $$ > ${pidFile}; sleep 60"]`,
      ].join('\n'),
    );
    coordinator = await startCoordinator({ args: ['--config', config] });
    clients = connectPlain(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.kill();
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {
      // never started, or gone
    }
  });

  it(`stops by force after ${STOP_BOUND_MS / 1000}s, says so, and exits 0`, async () => {
    await unary(clients.admin.StartBackup.bind(clients.admin), { vm: 'vm1' });
    await waitFor('the run to start its command', () => fs.existsSync(pidFile), 15_000);
    const exited = new Promise<number | null>((resolve) => coordinator.process.once('exit', (code) => resolve(code)));
    coordinator.process.kill('SIGTERM');
    assert.equal(await exited, 0, coordinator.log());
    assert.match(
      coordinator.log(),
      new RegExp(`WARN  stopped by force after ${STOP_BOUND_MS / 1000}s: calls or backup runs had not ended`),
    );
    assert.doesNotMatch(coordinator.log(), /ERROR|internal error/);
  });
});

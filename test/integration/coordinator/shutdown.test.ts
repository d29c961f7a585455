/**
 * Stopping the coordinator with SIGTERM while an agent is connected, a token is held and an Acquire waits:
 * the process exits 0, the waiting caller hears COORDINATOR_STOPPING (or UNAVAILABLE), never INTERNAL, the
 * coordinator logs no error, and the agent says once that the coordinator is stopping.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Clients } from '../../../common/client/connection';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { acquire, connectPlain, grant } from '../../helpers/token-client';
import { type AgentProcess, startAgent, waitFor, writeConfig } from '../agent/processes';

describe('coordinator: a clean stop on SIGTERM', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let agent: AgentProcess;

  before(async () => {
    coordinator = await startCoordinator({ args: ['--max-guest', '1', '--report-interval', '1s'] });
    clients = connectPlain(coordinator.address);
    const config = writeConfig(
      [
        `coordinator: ${coordinator.address}`,
        'vm: vm-agent',
        `controlSocket: ${path.join(tempDir(), 'agent.sock')}`,
        'jobs:',
        // Never due while the test runs: the agent only holds its session.
        '  - name: yearly',
        '    schedule: "0 0 1 1 *"',
        '    window: 1h',
        '    expectedDuration: 1m',
        '    command: ["true"]',
      ].join('\n'),
    );
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

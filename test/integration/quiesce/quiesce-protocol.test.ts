/**
 * The quiesce protocol with real processes: a real coordinator, a real `headroom-agent run` whose hook
 * scripts record their calls, and the real headroomctl host-backup --quiesce around a command that records
 * its snapshot step. The order of the calls is the proof: freeze hooks in order, the snapshot, thaw hooks
 * in reverse. A coordinator SIGKILLed mid-freeze leaves the agent to thaw by itself within its bound.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import type { Clients } from '../../../common/client/connection';
import { unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { statusOf } from '../../helpers/token-client';
import { type AgentProcess, waitFor } from '../agent/processes';
import { acquire, killAll, runCtl, testClients } from '../ctl/ctl-process';
import { type HookSet, hookSet, startQuiesceAgent } from './quiesce-fixture';

describe('quiesce protocol across a real coordinator and a real agent', function () {
  this.timeout(90_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const agents: AgentProcess[] = [];

  beforeEach(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
    clients = testClients(coordinator.address);
  });
  afterEach(async () => {
    await killAll();
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    clients.close();
    await coordinator.kill();
  });

  const agent = async (vm: string, hooks: HookSet, holdMs = 10_000) => {
    const a = await startQuiesceAgent(coordinator.address, vm, hooks, holdMs);
    agents.push(a);
    return a;
  };
  const hostBackup = (vm: string, mode: string, command: string) =>
    runCtl([
      '--coordinator',
      coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      vm,
      '--quiesce',
      mode,
      '--',
      'sh',
      '-c',
      command,
    ]);
  const history = async (vm: string) =>
    (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { vm, limit: 100 },
      )
    ).events;

  it('freezes the hooks in order, runs the snapshot, thaws them in reverse, and records an application-consistent backup', async () => {
    const hooks = hookSet(['10-db', '20-fs']);
    await agent('vm-app', hooks);
    const run = await hostBackup('vm-app', 'require', hooks.stepCommand('snapshot'));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-fs freeze', 'snapshot', '20-fs thaw', '10-db thaw']);
    const times = hooks.calls().map((c) => c.atNs);
    assert.deepEqual(
      [...times].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      times,
      'the calls file is in time order',
    );
    assert.match(run.stderr, /guest quiesced \(10-db, 20-fs\)/);
    assert.match(run.stderr, /consistency: application/);

    const events = await history('vm-app');
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'HISTORY_EVENT_TYPE_GRANTED',
        'HISTORY_EVENT_TYPE_QUIESCED',
        'HISTORY_EVENT_TYPE_THAWED',
        'HISTORY_EVENT_TYPE_RELEASED',
      ],
    );
    assert.match(events[1].detail, /hooks: 10-db, 20-fs/);
    assert.match(events[2].detail, /thawed on the coordinator's word after [\d.hms]+ frozen/);
    assert.match(events[3].detail, /^success, .*application-consistent/);
  });

  it('require: an agent that is not connected means the command does not run, exit 1 with the reason, a failed release', async () => {
    const hooks = hookSet(['10-db']);
    const run = await hostBackup('vm-absent', 'require', hooks.stepCommand('snapshot'));
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /the agent of VM vm-absent is not connected/);
    assert.deepEqual(hooks.sequence(), [], 'the command never ran');
    const events = await history('vm-absent');
    assert.deepEqual(
      events.map((e) => e.type),
      ['HISTORY_EVENT_TYPE_GRANTED', 'HISTORY_EVENT_TYPE_QUIESCE_FAILED', 'HISTORY_EVENT_TYPE_RELEASED'],
    );
    assert.match(events[2].detail, /^failure, exit 1, .*crash-consistent: guest not quiesced \(--quiesce require\)/);
  });

  it('require: a hook that exits 1 rolls the frozen hooks back, and the command does not run', async () => {
    const hooks = hookSet(['10-db', '20-bad'], ['20-bad']);
    await agent('vm-bad', hooks);
    const run = await hostBackup('vm-bad', 'require', hooks.stepCommand('snapshot'));
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /guest not quiesced: .*20-bad/);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-bad freeze', '10-db thaw']);
  });

  it('try: a hook that exits 1 lets the backup go on crash-consistent, and says so', async () => {
    const hooks = hookSet(['10-db', '20-bad'], ['20-bad']);
    await agent('vm-try', hooks);
    const run = await hostBackup('vm-try', 'try', hooks.stepCommand('snapshot'));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /--quiesce try: going on, crash-consistent/);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-bad freeze', '10-db thaw', 'snapshot']);
    const released = (await history('vm-try')).find((e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED')!;
    assert.match(released.detail, /^success, .*crash-consistent/);
  });

  it('try: an agent that is not connected lets the backup go on crash-consistent', async () => {
    const hooks = hookSet([]);
    const run = await hostBackup('vm-try-absent', 'try', hooks.stepCommand('snapshot'));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /not connected; --quiesce try: going on, crash-consistent/);
    assert.deepEqual(hooks.sequence(), ['snapshot']);
  });

  it('off: never asks the agent', async () => {
    const hooks = hookSet(['10-db']);
    await agent('vm-off', hooks);
    const run = await hostBackup('vm-off', 'off', hooks.stepCommand('snapshot'));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(hooks.sequence(), ['snapshot']);
    assert.deepEqual(
      (await history('vm-off')).map((e) => e.type),
      ['HISTORY_EVENT_TYPE_GRANTED', 'HISTORY_EVENT_TYPE_RELEASED'],
    );
  });

  it('a guest that thawed by itself before the snapshot was done makes it crash-consistent: try goes on, require fails', async () => {
    const hooks = hookSet(['10-db']);
    await agent('vm-slow', hooks);
    // The command outlasts the freeze's bound: the agent thaws on its own timer before the "snapshot".
    const slow = (mode: string) =>
      runCtl([
        '--coordinator',
        coordinator.address,
        'host-backup',
        '--host',
        'host-a',
        '--vm',
        'vm-slow',
        '--quiesce',
        mode,
        '--quiesce-hold',
        '300ms',
        '--',
        'sh',
        '-c',
        `sleep 1; ${hooks.stepCommand('snapshot')}`,
      ]);
    const tried = await slow('try');
    assert.equal(tried.code, 0, tried.stderr);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '10-db thaw', 'snapshot']);
    assert.match(
      tried.stderr,
      /the guest thawed by itself before the snapshot point was done \(its bound of 300ms passed\); the snapshot is crash-consistent/,
    );
    const required = await slow('require');
    assert.equal(required.code, 1, required.stderr);
    assert.match(required.stderr, /exit code 0, but the snapshot is only crash-consistent \(--quiesce require\)/);
    const events = await history('vm-slow');
    const thaws = events.filter((e) => e.type === 'HISTORY_EVENT_TYPE_THAWED');
    assert.equal(thaws.length, 2);
    assert.ok(
      thaws.every((e) => /^auto-thawed by the agent/.test(e.detail)),
      thaws.map((e) => e.detail).join('; '),
    );
    assert.deepEqual(
      events.filter((e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED').map((e) => /crash-consistent/.test(e.detail)),
      [true, true],
    );
  });

  it("thaws the guest on the coordinator's word when its token is released while it is frozen", async () => {
    const hooks = hookSet(['10-db', '20-fs']);
    await agent('vm-rel', hooks, 60_000);
    const token = await acquire(clients, { kind: 'HYPERVISOR', vm: 'vm-rel', job: 'snap' });
    const ref = { tokenId: token.tokenId, fencing: token.fencing };
    const frozen = await unary<v1.QuiesceRequest, v1.QuiesceResponse__Output>(
      clients.token.Quiesce.bind(clients.token),
      { ...ref, holdMs: 60_000 },
    );
    assert.equal(frozen.state, 'QUIESCE_STATE_FROZEN', frozen.message);
    await unary(clients.token.Release.bind(clients.token), {
      ...ref,
      outcome: { success: false, message: 'the snapshot tool crashed' },
    });
    await waitFor('the hooks to thaw', () => hooks.sequence().length === 4, 15_000);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-fs freeze', '20-fs thaw', '10-db thaw']);
    await waitFor(
      'the thaw in the history',
      async () => (await history('vm-rel')).some((e) => e.type === 'HISTORY_EVENT_TYPE_THAWED'),
      10_000,
    );
    const events = await history('vm-rel');
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'HISTORY_EVENT_TYPE_GRANTED',
        'HISTORY_EVENT_TYPE_QUIESCED',
        'HISTORY_EVENT_TYPE_RELEASED',
        'HISTORY_EVENT_TYPE_THAWED',
      ],
    );
    assert.match(events[3].detail, /^thawed on the coordinator's word/);
  });

  it('refuses --quiesce-hold without a quiesce mode as a usage error', async () => {
    const run = await runCtl([
      '--coordinator',
      coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-x',
      '--quiesce-hold',
      '2s',
      '--',
      'true',
    ]);
    assert.equal(run.code, 64, run.stderr);
    assert.match(run.stderr, /--quiesce-hold needs --quiesce require or try/);
  });

  it('refuses Quiesce of a GUEST token and with a stale fencing number (FAILED_PRECONDITION), and a bad bound by its field', async () => {
    const guest = await acquire(clients, { kind: 'GUEST', vm: 'vm-guest', job: 'restic' });
    const quiesce = (req: Partial<v1.QuiesceRequest>) =>
      unary(clients.token.Quiesce.bind(clients.token), { tokenId: guest.tokenId, fencing: guest.fencing, ...req });
    const notHv = await statusOf(quiesce({}));
    assert.equal(notHv.code, grpc.status.FAILED_PRECONDITION);
    assert.match(notHv.details, /GUEST token; only a HYPERVISOR token's guest is quiesced/);
    assert.equal((await statusOf(quiesce({ fencing: guest.fencing + 1 }))).code, grpc.status.FAILED_PRECONDITION);
    const bad = await statusOf(quiesce({ holdMs: 3_600_000 }));
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /^hold_ms: /);
  });

  it('thaws by itself within its bound when the coordinator is SIGKILLed mid-freeze, and reports it once it can', async () => {
    const holdMs = 2_000;
    const hooks = hookSet(['10-db', '20-fs']);
    const a = await agent('vm-kill', hooks, holdMs);
    const token = await acquire(clients, { kind: 'HYPERVISOR', vm: 'vm-kill', job: 'snap' });
    const frozen = await unary<v1.QuiesceRequest, v1.QuiesceResponse__Output>(
      clients.token.Quiesce.bind(clients.token),
      { tokenId: token.tokenId, fencing: token.fencing },
    );
    assert.equal(frozen.state, 'QUIESCE_STATE_FROZEN', frozen.message);
    assert.equal(frozen.holdMs, holdMs);
    const address = coordinator.address;
    await coordinator.kill();
    clients.close();

    await waitFor('the hooks to thaw by themselves', () => hooks.sequence().length === 4, 15_000);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-fs freeze', '20-fs thaw', '10-db thaw']);
    const calls = hooks.calls();
    // The bound counts from the first freeze hook's start; the thaw hooks start once it passes. The margin
    // is for a loaded machine's scheduling (two shells started per hook), not a performance target.
    const frozenMs = Number(calls[3].atNs - calls[0].atNs) / 1e6;
    assert.ok(frozenMs >= holdMs - 50, `thawed after ${frozenMs} ms, before its bound`);
    assert.ok(frozenMs < holdMs + 3_000, `frozen ${frozenMs} ms for a bound of ${holdMs} ms`);
    // Said once the last thaw hook has returned, a moment after it wrote its line.
    await waitFor(
      'the agent to log its auto-thaw',
      () => /no thaw came within the bound: the guest thawed by itself/.test(a.stderr()),
      10_000,
    );

    // A coordinator back on the same address and database hears of it when the agent reconnects.
    coordinator = await startCoordinator({ host: 'host-a', dbPath: coordinator.dbPath, listen: address });
    clients = testClients(coordinator.address);
    await waitFor(
      'the auto-thaw in the history',
      async () => (await history('vm-kill')).some((e) => e.type === 'HISTORY_EVENT_TYPE_THAWED'),
      30_000,
    );
    const thawed = (await history('vm-kill')).find((e) => e.type === 'HISTORY_EVENT_TYPE_THAWED')!;
    assert.equal(thawed.tokenId, token.tokenId);
    assert.match(thawed.detail, /^auto-thawed by the agent/);
  });
});

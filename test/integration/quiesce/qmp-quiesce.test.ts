/**
 * `headroomctl host-backup --driver qmp --quiesce` against a real qemu-storage-daemon, a real coordinator
 * and a real agent with recording hooks: the guest is frozen right before the QMP transaction that starts
 * the block jobs and thawed right after it, and the backup is recorded application-consistent in the
 * manifest and in the release.
 */
import { strict as assert } from 'node:assert';
import type { Clients } from '../../../common/client/connection';
import { unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import type { AgentProcess } from '../agent/processes';
import { killAll, runCtl, testClients } from '../ctl/ctl-process';
import { qmpHostBackupArgs, useFixture } from '../host-backup/fixture';
import { hookSet, startQuiesceAgent } from './quiesce-fixture';

describe('host-backup --driver qmp --quiesce', function () {
  this.timeout(90_000);
  const f = useFixture();
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let agent: AgentProcess | undefined;
  const hostBackup = (...extra: string[]) =>
    runCtl(qmpHostBackupArgs(coordinator.address, f.daemon.qmpSocket, f.store.dir, ...extra));

  beforeEach(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
    clients = testClients(coordinator.address);
  });
  afterEach(async () => {
    await killAll();
    await agent?.stop();
    agent = undefined;
    clients.close();
    await coordinator.kill();
  });

  it('freezes right before the transaction, thaws right after, and records "application" in every manifest and the release', async () => {
    const hooks = hookSet(['10-db', '20-fs']);
    agent = await startQuiesceAgent(coordinator.address, 'vm1', hooks, 10_000);
    const run = await hostBackup('--quiesce', 'require');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-fs freeze', '20-fs thaw', '10-db thaw']);
    const records = f.store.records('vm1');
    assert.equal(records.length, 2);
    assert.deepEqual(
      records.map((r) => r.consistency),
      ['application', 'application'],
    );
    // The jobs' creation (the snapshot point) lies between the last freeze hook and the first thaw hook
    // (ms in the manifest, ns in the calls file: 1 ms of rounding either way).
    const calls = hooks.calls();
    const lastFreezeMs = Number(calls[1].atNs / 1_000_000n);
    const firstThawMs = Number(calls[2].atNs / 1_000_000n);
    for (const r of records) {
      assert.ok(
        r.takenAtMs >= lastFreezeMs - 1 && r.takenAtMs <= firstThawMs + 1,
        `snapshot at ${r.takenAtMs}, frozen ${lastFreezeMs}..${firstThawMs}`,
      );
    }
    const events = (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { vm: 'vm1', limit: 20 },
      )
    ).events;
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'HISTORY_EVENT_TYPE_GRANTED',
        'HISTORY_EVENT_TYPE_QUIESCED',
        'HISTORY_EVENT_TYPE_THAWED',
        'HISTORY_EVENT_TYPE_RELEASED',
      ],
    );
    assert.match(events[3].detail, /^success, .*application-consistent/);
  });

  it('try without an agent: backs up crash-consistent and says so in the manifest and the release', async () => {
    const run = await hostBackup('--quiesce', 'try');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /not connected; --quiesce try: going on, crash-consistent/);
    assert.deepEqual(
      f.store.records('vm1').map((r) => r.consistency),
      ['crash', 'crash'],
    );
    const events = (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { vm: 'vm1', limit: 20 },
      )
    ).events;
    assert.match(events.at(-1)!.detail, /^success, .*crash-consistent/);
  });

  it('require without an agent: no backup, exit 1 with the reason, a failed release', async () => {
    const run = await hostBackup('--quiesce', 'require');
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /agent of VM vm1 is not connected/);
    assert.deepEqual(f.store.records('vm1'), []);
    const events = (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { vm: 'vm1', limit: 20 },
      )
    ).events;
    assert.match(events.at(-1)!.detail, /^failure, exit 1/);
  });

  it('qmp-backup alone refuses --quiesce: it quiesces only under the token host-backup gives it', async () => {
    const run = await runCtl([
      'qmp-backup',
      '--vm',
      'vm1',
      '--qmp-socket',
      f.daemon.qmpSocket,
      '--target',
      f.store.dir,
      '--quiesce',
      'try',
    ]);
    assert.equal(run.code, 64, run.stderr);
    assert.match(
      run.stderr,
      /--quiesce try needs the HYPERVISOR token the backup runs under: use host-backup --driver qmp/,
    );
    assert.deepEqual(f.store.records('vm1'), []);
  });
});

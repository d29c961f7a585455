/**
 * The real agent against the real coordinator (its own process, a real SQLite file): scheduled jobs run
 * and are released, exec passes the command's exit code through, a revoked token's process tree is gone.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { v1 } from '../../../proto';
import { AdminClient, connect, unary } from '../../../common/client/connection';
import { RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { AgentProcess, pidAlive, readPids, startAgent, treeJobConfig, waitFor, writeConfig } from './processes';

describe('headroom-agent with a real coordinator', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: ReturnType<typeof connect>;
  let admin: AdminClient;
  const agents: AgentProcess[] = [];
  const pidsToReap: number[] = [];

  before(async () => {
    coordinator = await startCoordinator({ args: ['--lease-ttl', '3s', '--report-interval', '1s'] });
    clients = connect(coordinator.address, grpc.credentials.createInsecure());
    admin = clients.admin;
  });
  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    for (const pid of pidsToReap.splice(0)) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  const agent = (args: string[]) => {
    const a = startAgent(args);
    agents.push(a);
    return a;
  };

  const history = async (vm: string) =>
    (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(admin.ListHistory.bind(admin), {
        host: 'host-a',
        vm,
        limit: 100,
      })
    ).events;

  it('runs a guest job on a seconds schedule through the real agent, and its release appears in the history', async () => {
    const marker = path.join(tempDir(), 'ran');
    const config = writeConfig(
      [
        `coordinator: ${coordinator.address}`,
        'vm: vm-sched',
        'jobs:',
        '  - name: every-2s',
        '    schedule: "*/2 * * * * *"',
        '    window: 1s',
        '    expectedDuration: 1s',
        `    command: [sh, -c, "echo ran >> ${marker}"]`,
      ].join('\n'),
    );
    const a = agent(['run', '--config', config]);
    const released = await waitFor(
      'a RELEASED event for the job',
      async () =>
        (await history('vm-sched')).find((e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED' && e.job === 'every-2s'),
      15_000,
    );
    assert.equal(released.kind, 'TOKEN_KIND_GUEST');
    assert.equal(released.host, 'host-a');
    assert.match(released.detail, /^success, exit 0, /);
    const events = await history('vm-sched');
    const granted = events.find((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' && e.tokenId === released.tokenId);
    assert.ok(granted, 'the grant of the released token is in the history');
    assert.match(a.stderr(), /INFO  session up host=host-a vm=vm-sched/);
    await waitFor('the agent to log the end of the run', () =>
      /INFO  job finished job=every-2s status=succeeded exitCode=0/.test(a.stderr()),
    );
    const agents = (
      await unary<v1.ListAgentsRequest, v1.ListAgentsResponse__Output>(admin.ListAgents.bind(admin), { host: '' })
    ).agents;
    const me = agents.find((x) => x.vm === 'vm-sched');
    assert.ok(me?.connected, 'the coordinator lists the agent as connected');
    assert.deepEqual(
      me.jobs.map((j) => j.name),
      ['every-2s'],
    );
  });

  it("exec passes the command's exit code through and the coordinator records the release", async () => {
    const a = agent([
      'exec',
      '--job',
      'adhoc',
      '--coordinator',
      coordinator.address,
      '--window',
      '1m',
      '--',
      'sh',
      '-c',
      'exit 3',
    ]);
    assert.equal(await a.exited, 3);
    const released = (await history('')).find((e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED' && e.job === 'adhoc');
    assert.ok(released, `no release of job adhoc in the history; exec said:\n${a.stderr()}`);
    // It wrote nothing, and that is known.
    assert.match(released.detail, /^failure, exit 3, 0 B written, took [\d.hms]+: exit code 3$/);
    const ok = agent(['exec', '--job', 'adhoc-ok', '--coordinator', coordinator.address, '--', 'true']);
    assert.equal(await ok.exited, 0);
  });

  it("records what the command's process tree wrote, from the kernel's I/O accounting, in RELEASED's detail", async () => {
    const out = path.join(tempDir(), 'backup.bin');
    // 70 KiB through a child of the shell, so that the bytes of a reaped child are counted too.
    const script = `head -c 71680 /dev/urandom > ${out} && sync`;
    const a = agent(['exec', '--job', 'write-70k', '--coordinator', coordinator.address, '--', 'sh', '-c', script]);
    assert.equal(await a.exited, 0, a.stderr());
    const released = (await history('')).find((e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED' && e.job === 'write-70k');
    assert.ok(released, `no release of job write-70k in the history; exec said:\n${a.stderr()}`);
    const m = /^success, exit 0, ([\d.]+) KiB written, took [\d.hms]+/.exec(released.detail);
    assert.ok(m, released.detail);
    // Storage counts whole pages, and the file system may add its own: near 70 KiB, not below.
    assert.ok(Number(m[1]) >= 70 && Number(m[1]) < 256, released.detail);
  });

  it('records the figure a command reports in HEADROOM_BYTES_FILE, for bytes its own tree did not write', async () => {
    const script = 'echo 1048576 > "$HEADROOM_BYTES_FILE"';
    const a = agent(['exec', '--job', 'told-1m', '--coordinator', coordinator.address, '--', 'sh', '-c', script]);
    assert.equal(await a.exited, 0, a.stderr());
    const released = (await history('')).find((e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED' && e.job === 'told-1m');
    assert.match(released?.detail ?? '', /^success, exit 0, 1\.0 MiB written, /);
  });

  it("kills the job's process tree when an administrator revokes its token", async () => {
    const { config, pidFile } = treeJobConfig(coordinator.address, 'vm-revoke');
    const a = agent(['run', '--config', config]);
    const pids = await waitFor('the job to start its process tree', () => readPids(pidFile), 15_000);
    pidsToReap.push(...pids);
    const tokens = await unary<v1.ListTokensRequest, v1.ListTokensResponse__Output>(admin.ListTokens.bind(admin), {
      host: 'host-a',
    });
    const token = tokens.active.find((t) => t.vm === 'vm-revoke');
    assert.ok(token, 'the job holds a token');
    await unary<v1.RevokeTokenRequest, v1.RevokeTokenResponse__Output>(admin.RevokeToken.bind(admin), {
      tokenId: token.tokenId,
      reason: 'test revokes',
    });
    const t0 = Date.now();
    await waitFor('every process of the tree to be gone', () => pids.every((p) => !pidAlive(p)), 5_000);
    // Pushed over the session at once, not noticed at the next renewal (TTL 3 s: every 1 s).
    assert.ok(Date.now() - t0 < 1_000, `stopped ${Date.now() - t0} ms after the revoke`);
    await waitFor('the agent to log the revoke', () =>
      /WARN  token revoked; stopping the job job=tree/.test(a.stderr()),
    );
    assert.match(a.stderr(), /reason="test revokes"/);
  });
});

/**
 * The real headroom-agent process against a minimal in-test coordinator whose answers the test decides:
 * the session, and how a running job's process tree is stopped when the lease is revoked, refused or
 * cannot be renewed, and exec's exit codes.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { tempDir } from '../../helpers/coordinator-process';
import { FakeCoordinator } from './fake-coordinator';
import {
  AgentProcess,
  pidAlive,
  readPids,
  startAgent,
  treeCommand,
  treeJobConfig,
  waitFor,
  writeConfig,
} from './processes';

describe('headroom-agent against a scripted coordinator', function () {
  this.timeout(30_000);
  let fake: FakeCoordinator;
  const agents: AgentProcess[] = [];
  const pidsToReap: number[] = [];

  beforeEach(async () => {
    fake = await new FakeCoordinator().start();
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    for (const pid of pidsToReap.splice(0)) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    await fake.stop();
  });

  const agent = (args: string[], env?: NodeJS.ProcessEnv) => {
    const a = startAgent(args, { env });
    agents.push(a);
    return a;
  };

  /** A daemon with one job running the process tree, as soon as it is up. */
  function daemonWithTreeJob(extra = '') {
    const { config, pidFile } = treeJobConfig(fake.address, 'vm-test', extra);
    const a = agent(['run', '--config', config]);
    return { a, pidFile };
  }

  async function runningTree(pidFile: string): Promise<number[]> {
    const pids = await waitFor('the job to start its process tree', () => readPids(pidFile), 15_000);
    pidsToReap.push(...pids);
    assert.ok(pids.every(pidAlive));
    return pids;
  }

  it('says hello with its identity and jobs, then reports load at the interval the coordinator sets', async () => {
    const config = writeConfig(
      [
        `coordinator: ${fake.address}`,
        'vm: vm-test',
        'jobs:',
        '  - {name: nightly, schedule: "0 2 * * *", window: 2h, expectedDuration: 30m, command: ["true"], priority: 4, cost: {ioBytesPerSec: 1000, cpuPercent: 50}}',
      ].join('\n'),
    );
    const a = agent(['run', '--config', config]);
    await waitFor('two load reports', () => fake.loads.length >= 2);
    const hello = fake.hellos[0];
    assert.equal(hello.vm, 'vm-test');
    assert.equal(hello.host, '');
    assert.match(hello.agentVersion, /^\d+\.\d+\.\d+/);
    assert.ok(hello.hostname);
    assert.deepEqual(hello.jobs, [
      {
        name: 'nightly',
        schedule: '0 2 * * *',
        windowMs: 7_200_000,
        expectedDurationMs: 1_800_000,
        declaredCost: { ioBytesPerSec: 1000, cpuPercent: 50 },
        priority: 4,
        // No shared target (agent.yaml's sharedTarget): proto3's empty string.
        target: '',
      },
    ]);
    const load = fake.loads[1];
    assert.ok(load.memTotalBytes > 0 && load.memUsedBytes > 0 && load.memUsedBytes <= load.memTotalBytes);
    assert.ok(load.cpuPercent >= 0 && load.cpuPercent <= 100);
    assert.ok(load.load1 >= 0);
    assert.match(a.stderr(), /INFO  session up host=host-fake/);
  });

  it('stops the whole process tree of a job when the coordinator revokes its token, and acknowledges', async () => {
    const { a, pidFile } = daemonWithTreeJob();
    const pids = await runningTree(pidFile);
    const grant = fake.grants[0].token;
    assert.equal(grant.kind, 'TOKEN_KIND_GUEST');
    const commandId = fake.revoke(grant, 'an administrator needs the slot');
    await waitFor('every process of the tree to be gone', () => pids.every((p) => !pidAlive(p)), 5_000);
    const ack = await waitFor('the ack', () => fake.acks.find((x) => x.commandId === commandId));
    assert.deepEqual(ack, { commandId, ok: true, message: 'stopping job tree' });
    await waitFor('the job to be reported revoked', () => /WARN  job revoked job=tree/.test(a.stderr()));
    assert.equal(fake.releases.length, 0, 'a revoked token is void: nothing to release');
  });

  it('stops the job when the coordinator refuses a renewal with FAILED_PRECONDITION', async () => {
    const { a, pidFile } = daemonWithTreeJob();
    const pids = await runningTree(pidFile);
    fake.renewFailure = grpc.status.FAILED_PRECONDITION;
    await waitFor('every process of the tree to be gone', () => pids.every((p) => !pidAlive(p)), 5_000);
    await waitFor('the job to be reported as lease-lost', () => /job lease-lost job=tree/.test(a.stderr()));
    assert.match(a.stderr(), /lease lost: the coordinator refused renewal \(stale fencing token \(fake\)\)/);
  });

  it('fail-safe: stops the job before its lease expires when renewals get no answer', async () => {
    fake.renewFailure = 'hang';
    const { a, pidFile } = daemonWithTreeJob();
    const pids = await runningTree(pidFile);
    const grantedAt = fake.grants[0].at;
    await waitFor('every process of the tree to be gone', () => pids.every((p) => !pidAlive(p)), 5_000);
    const goneAfter = Date.now() - grantedAt;
    // TTL 3 s, margin 1 s: the agent stops at 2 s by its own clock, well before the coordinator's 3 s.
    assert.ok(goneAfter < fake.ttlMs, `tree gone ${goneAfter} ms after the grant (lease: ${fake.ttlMs} ms)`);
    assert.ok(goneAfter >= 1_500, `not stopped before the fail-safe deadline (${goneAfter} ms)`);
    await waitFor('the fail-safe to be logged', () =>
      /could not renew the lease; stopped 1s before it would expire/.test(a.stderr()),
    );
  });

  it("exec exits with the command's exit code and releases with the outcome", async () => {
    const a = agent([
      'exec',
      '--job',
      'adhoc',
      '--coordinator',
      fake.address,
      '--window',
      '1m',
      '--',
      'sh',
      '-c',
      'echo out; echo err >&2; exit 7',
    ]);
    assert.equal(await a.exited, 7);
    assert.equal(a.stdout(), 'out\n');
    assert.match(a.stderr(), /^err$/m);
    assert.match(
      a.stderr(),
      /headroom-agent: granted token [0-9a-f-]+ \(fencing 1\) on host-fake at \d\d:\d\d:\d\d.*; running sh -c/,
    );
    const req = fake.acquires[0].request;
    assert.equal(req.kind, 'TOKEN_KIND_GUEST');
    assert.equal(req.job, 'adhoc');
    assert.ok(Number(req.latestStartUnixMs) > Date.now() + 50_000);
    assert.equal(fake.releases.length, 1);
    const outcome = fake.releases[0].request.outcome!;
    assert.deepEqual([outcome.success, outcome.exitCode, outcome.message], [false, 7, 'exit code 7']);
  });

  it('exec says where it stands in the queue, and exits 75 with the reason when denied', async () => {
    fake.onAcquire = (_req, call) => {
      call.write({
        queued: { position: 2, estimatedStartUnixMs: Date.now() + 600_000, waitingFor: 'a hypervisor backup of vm-9' },
      });
      setTimeout(() => {
        call.write({ denied: { reason: 'DENY_REASON_WINDOW_CLOSED', message: 'could not start before 02:30' } });
        call.end();
      }, 200);
    };
    const a = agent([
      'exec',
      '--job',
      'adhoc',
      '--coordinator',
      fake.address,
      '--vm',
      'vm-x',
      '--host',
      'host-x',
      '--priority=-2',
      '--',
      'true',
    ]);
    assert.equal(await a.exited, 75);
    const req = fake.acquires[0].request;
    assert.deepEqual([req.vm, req.host, req.priority, req.expectedDurationMs], ['vm-x', 'host-x', -2, 600_000]);
    assert.match(
      a.stderr(),
      /headroom-agent: job adhoc is waiting for a GUEST token: queue position 2, a hypervisor backup of vm-9; planned start \d\d:\d\d:\d\d \(in [\dms]+\)/,
    );
    assert.deepEqual(
      a.stderr().match(/^headroom-agent: .*denied.*$/gm),
      ['headroom-agent: denied a GUEST token for adhoc (WINDOW_CLOSED): could not start before 02:30'],
      'the denial, said once',
    );
  });

  it('exec withdraws its request when interrupted while waiting', async () => {
    fake.onAcquire = (_req, call) => call.write({ queued: { position: 1, estimatedStartUnixMs: 0, waitingFor: 'x' } });
    const a = agent(['exec', '--job', 'adhoc', '--coordinator', fake.address, '--', 'true']);
    await waitFor('the request to be queued', () => /is waiting for a GUEST token/.test(a.stderr()));
    a.process.kill('SIGINT');
    assert.equal(await a.exited, 130);
    await waitFor('the acquire stream to be cancelled', () => fake.acquires[0].cancelled);
    assert.equal(fake.grants.length, 0);
  });

  it('exec stops the command and exits 75 when the lease is lost', async () => {
    fake.renewFailure = grpc.status.NOT_FOUND;
    const pidFile = path.join(tempDir(), 'pids');
    const a = agent([
      'exec',
      '--job',
      'adhoc',
      '--coordinator',
      fake.address,
      '--kill-grace',
      '1s',
      '--',
      ...treeCommand(pidFile),
    ]);
    const pids = await runningTree(pidFile);
    assert.equal(await a.exited, 75);
    assert.deepEqual(pids.filter(pidAlive), []);
    assert.match(a.stderr(), /headroom-agent: stopping the command: lease lost/);
  });

  it('exec forwards SIGTERM to the running command and exits with its code', async () => {
    const marker = path.join(tempDir(), 'got-term');
    const a = agent([
      'exec',
      '--job',
      'adhoc',
      '--coordinator',
      fake.address,
      '--',
      'sh',
      '-c',
      `trap 'echo term > ${marker}; exit 42' TERM; echo started; while :; do sleep 0.05; done`,
    ]);
    await waitFor('the command to start', () => a.stdout().includes('started'));
    a.process.kill('SIGTERM');
    assert.equal(await a.exited, 42);
    assert.equal(fs.readFileSync(marker, 'utf8'), 'term\n');
    assert.equal(fake.releases[0].request.outcome!.exitCode, 42);
  });

  it('exec gives up with 75 when the coordinator stays unreachable until the window ends', async () => {
    await fake.stop();
    const t0 = Date.now();
    const a = agent(['exec', '--job', 'adhoc', '--coordinator', fake.address, '--window', '2s', '--', 'true'], {
      HEADROOM_LOG: '',
    });
    assert.equal(await a.exited, 75);
    const took = Date.now() - t0;
    assert.ok(took >= 2_000 && took < 8_000, `gave up after ${took} ms`);
    assert.match(a.stderr(), /headroom-agent: cannot reach the coordinator at 127\.0\.0\.1:\d+ .*; retrying until/);
    assert.match(a.stderr(), /headroom-agent: skipped: could not get a GUEST token for adhoc before its window closed/);
  });

  it('exec runs the command anyway with --on-unreachable run, and says so', async () => {
    await fake.stop();
    const a = agent([
      'exec',
      '--job',
      'adhoc',
      '--coordinator',
      fake.address,
      '--on-unreachable',
      'run',
      '--',
      'sh',
      '-c',
      'exit 3',
    ]);
    assert.equal(await a.exited, 3);
    assert.match(a.stderr(), /headroom-agent: ran without a token \(coordinator unreachable\): exit code 3/);
  });

  it('exec refuses bad usage with 64 and a bad configuration with 78', async () => {
    const usage = agent(['exec', '--window', 'soon', '--', 'true']);
    assert.equal(await usage.exited, 64);
    assert.match(usage.stderr(), /--job: missing/);
    assert.match(usage.stderr(), /--window: expected a duration/);
    assert.match(usage.stderr(), /; see 'headroom-agent exec --help'\n$/);
    const config = writeConfig('jobs: [{name: x}]\nbogus: 1\n');
    const bad = agent(['exec', '--job', 'x', '--config', config, '--', 'true']);
    assert.equal(await bad.exited, 78);
    assert.match(bad.stderr(), /agent\.yaml: bogus: unknown key/);
    assert.match(bad.stderr(), /agent\.yaml: jobs\[0\]\.schedule: missing/);
  });
});

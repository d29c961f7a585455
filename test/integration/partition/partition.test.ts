/**
 * Network partition (issue 6), with real network namespaces: the coordinator serves TLS on one end of a
 * veth pair, `headroom-agent exec` runs a long backup job in a namespace at the other end, and the link is
 * cut. The agent's fail-safe must stop the job before its lease can expire, so that the token the
 * coordinator grants after the expiry never overlaps it; once the link is back, the stale holder's
 * renewal and release are refused. Needs root (ip netns): skipped, saying so, when not root; as root a
 * namespace that cannot be made fails the test.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, tlsCredentials, unary } from '../../../common/client/connection';
import { AGENT_MAIN, type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { acquire } from '../../helpers/token-client';
import { type AgentProcess, startAgent, waitFor } from '../agent/processes';
import { createPartition, needsNamespaces, type Partition } from '../../helpers/netns';
import { requireTool } from '../../helpers/require-tool';

const STALE_HOLDER = path.join(__dirname, 'stale-holder.js');
const TTL = '3s';

/** The backup job: a heartbeat every 50 ms; on SIGTERM it writes when it stopped and exits. */
const JOB = `trap 'date +%s%3N > "$0/stopped"; exit 143' TERM
while :; do date +%s%3N > "$0/heartbeat"; sleep 0.05; done`;

describe('network partition between an agent and the coordinator (network namespaces)', function () {
  this.timeout(90_000);
  let partition: Partition | undefined;
  let coordinator: RunningCoordinator | undefined;
  let agent: AgentProcess | undefined;
  let clients: Clients | undefined;

  before(function () {
    needsNamespaces.call(this);
    requireTool('openssl', 'openssl');
  });

  afterEach(async () => {
    await agent?.stop();
    clients?.close();
    await coordinator?.stop();
    partition?.remove();
  });

  it("stops the cut-off agent's job before its lease expires; the next token comes after; stale calls are refused", async () => {
    const dir = tempDir('headroom-partition-');
    const tag = `p${process.pid % 100_000}`;
    partition = createPartition(tag);
    const [cert, key] = [path.join(dir, 'coordinator.pem'), path.join(dir, 'coordinator-key.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        '/CN=headroom partition test',
        '-addext',
        `subjectAltName=IP:${partition.hostAddress}`,
      ],
      { stdio: 'pipe' },
    );
    // Not loopback, so TLS: the agent trusts this self-signed certificate as its CA. Callers are not what
    // this test is about, so they go unidentified, which off loopback must be asked for.
    coordinator = await startCoordinator({
      host: 'part-host',
      args: [
        '--listen',
        `${partition.hostAddress}:0`,
        '--tls-cert',
        cert,
        '--tls-key',
        key,
        '--tls-allow-anonymous',
        '--lease-ttl',
        TTL,
      ],
    });
    // The product's credentials: no TLS ServerName for an IP address (no DEP0123 in the test's output).
    clients = connect(coordinator.address, tlsCredentials(coordinator.address, { ca: fs.readFileSync(cert) }));
    const config = path.join(dir, 'agent.yaml');
    fs.writeFileSync(
      config,
      `coordinator: ${coordinator.address}\ntls:\n  caFile: ${cert}\nvm: vm1\nhost: part-host\n`,
    );

    agent = startAgent(
      [
        'netns',
        'exec',
        partition.namespace,
        process.execPath,
        AGENT_MAIN,
        'exec',
        '--config',
        config,
        '--job',
        'nightly',
        '--ttl',
        TTL,
        '--kill-grace',
        '2s',
        '--',
        'sh',
        '-c',
        JOB,
        dir,
      ],
      { executable: 'ip' },
    );
    const granted = await waitFor(
      'the agent granted a token',
      () => /granted token (\S+) \(fencing (\d+)\)/.exec(agent!.stderr()),
      20_000,
    );
    const [staleToken, staleFencing] = [granted![1], Number(granted![2])];
    await waitFor('the job running', () => fs.existsSync(path.join(dir, 'heartbeat')));
    // Renewals get through while the link is up.
    await waitFor('a renewal', async () => {
      const h = await unary(clients!.admin.ListHistory.bind(clients!.admin), { vm: 'vm1', limit: 100 });
      return h.events.some((e) => e.type === 'HISTORY_EVENT_TYPE_RENEWED' && e.tokenId === staleToken);
    });

    // Someone else waits for the host: a HYPERVISOR backup, queued behind the agent's GUEST token.
    const next = acquire(clients, { kind: 'TOKEN_KIND_HYPERVISOR', host: 'part-host', vm: 'vm2' });
    let nextReceivedAt = 0;
    void next.done.then(
      () => (nextReceivedAt = Date.now()),
      () => {},
    );
    await waitFor('the HYPERVISOR request queued', () => next.updates.length > 0);
    assert.ok(next.updates[0].queued);

    partition.cut();
    const nextToken = (await next.done).granted!;
    // Released at once: nothing renews it, and on a busy machine the checks below can outlast its lease.
    await unary(clients.token.Release.bind(clients.token), {
      tokenId: nextToken.tokenId,
      fencing: nextToken.fencing,
      outcome: { success: true },
    });
    assert.ok(fs.existsSync(path.join(dir, 'stopped')), 'the job had stopped by the time the next token was granted');
    const stoppedAt = Number(fs.readFileSync(path.join(dir, 'stopped'), 'utf8'));
    const lastHeartbeat = Number(fs.readFileSync(path.join(dir, 'heartbeat'), 'utf8'));
    const history = await unary(clients.admin.ListHistory.bind(clients.admin), { host: 'part-host', limit: 100 });
    const expired = history.events.find((e) => e.type === 'HISTORY_EVENT_TYPE_EXPIRED' && e.tokenId === staleToken);
    assert.ok(
      expired,
      `the agent's lease expired on the coordinator: ${JSON.stringify(history.events.map((e) => e.type))}`,
    );
    assert.ok(
      stoppedAt < expired.atUnixMs,
      `the job stopped (${stoppedAt}) before its lease expired (${expired.atUnixMs})`,
    );
    assert.ok(lastHeartbeat <= stoppedAt, 'and did nothing after it stopped');
    assert.ok(
      stoppedAt < nextReceivedAt,
      `the job stopped (${stoppedAt}) before the next token was granted (${nextReceivedAt})`,
    );
    assert.ok(nextToken.fencing > staleFencing);
    assert.match(agent.stderr(), /stopping the command/);
    console.log(
      `      job stopped ${expired.atUnixMs - stoppedAt} ms before its lease expired, ${nextReceivedAt - stoppedAt} ms before the next grant`,
    );

    partition.restore();
    assert.equal(await agent.exited, 75, 'the agent exits with 75: its lease was lost and the command stopped');
    const stale = JSON.parse(
      execFileSync(
        'ip',
        [
          'netns',
          'exec',
          partition.namespace,
          process.execPath,
          STALE_HOLDER,
          coordinator.address,
          cert,
          staleToken,
          String(staleFencing),
        ],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    ) as { renew: { code: number; details: string }; release: { code: number; details: string } };
    assert.equal(stale.renew.code, grpc.status.FAILED_PRECONDITION, stale.renew.details);
    assert.match(stale.renew.details, /expired/);
    assert.equal(stale.release.code, grpc.status.FAILED_PRECONDITION, stale.release.details);
    const after = await unary(clients.admin.ListHistory.bind(clients.admin), { vm: 'vm1', limit: 100 });
    assert.ok(
      !after.events.some(
        (e) =>
          e.tokenId === staleToken &&
          (e.type === 'HISTORY_EVENT_TYPE_RENEWED' || e.type === 'HISTORY_EVENT_TYPE_RELEASED') &&
          e.seq > expired.seq,
      ),
      'nothing the stale holder sent after the expiry was recorded',
    );
  });
});

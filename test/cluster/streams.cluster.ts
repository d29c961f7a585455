/**
 * Streams through a follower across leader changes (issue 17 point 3): a real agent's session, a waiting
 * Acquire and `headroomctl history --follow` each pass through a member's front door to the leader; the
 * leader is SIGKILLed under them, and each carries on with the next leader — the session reconnects, the
 * waiting request is granted under the same request id, the history resumes with no event lost or repeated.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../common/client/connection';
import { type ClusterMembers, type Member, startMembers } from '../helpers/cluster-members';
import { tempDir } from '../helpers/coordinator-process';
import { type EtcdCluster, startEtcdCluster } from '../helpers/etcd-cluster';
import { acquireRetrying, grantedToken, release } from '../helpers/token-client';
import { waitFor } from '../helpers/wait';
import { type AgentProcess, idleAgentConfig, startAgent } from '../integration/agent/processes';
import { killAll, runCtl, spawnCtl } from '../integration/ctl/ctl-process';

describe('cluster: streams through a follower across leader changes', function () {
  this.timeout(5 * 60_000);
  let etcd: EtcdCluster | undefined;
  let members: ClusterMembers | undefined;
  let follower: Member;
  let clients: Clients | undefined;
  let agent: AgentProcess | undefined;

  before(async () => {
    etcd = await startEtcdCluster();
    // One GUEST token per host at a time, so that a second request waits; tokens outlive the test.
    members = await startMembers({
      endpoints: etcd.endpoints,
      electionTtl: '2s',
      args: ['--lease-ttl', '5m', '--max-guest', '1', '--report-interval', '1s'],
    });
    const leader = await members.waitLeader();
    follower = members.members.find((m) => m !== leader)!;
    // Only the follower: every call must cross its forwarder, and it must survive the leader's death.
    clients = connect(follower.address, grpc.credentials.createInsecure(), {}, { viaMembers: true });
  });

  after(async () => {
    await killAll();
    await agent?.stop();
    clients?.close();
    await members?.stopAll();
    await etcd?.cleanup();
  });

  /** SIGKILLs the leader, waits for the next one (never `follower`'s death: it is not the leader), restarts the old one. */
  async function killLeader(): Promise<void> {
    const old = await members!.waitLeader();
    assert.notEqual(old, follower, 'the follower the clients use leads: the test would not cross a forwarder');
    await members!.kill(old);
    await members!.waitLeader(60_000, old);
    await members!.restart(old);
    await followerForwards();
  }

  /** Until the follower has seen the new leader, it answers UNAVAILABLE at once (clients call again). */
  const followerForwards = () =>
    waitFor(
      () =>
        unary(clients!.admin.ListHosts.bind(clients!.admin), {}).then(
          () => true,
          () => false,
        ),
      60_000,
      'the follower to forward to the new leader',
    );

  /** Ensures the clients' member is a follower: while it leads, its leadership is taken away by a kill. */
  async function followerIsNotLeader(): Promise<void> {
    for (;;) {
      const leader = await members!.waitLeader();
      if (leader !== follower) break;
      await members!.kill(leader);
      await members!.waitLeader(60_000, leader);
      await members!.restart(leader);
    }
    await followerForwards();
  }

  const agentConnected = async (): Promise<boolean> => {
    const r = await runCtl(['--coordinator', follower.address, 'agents', '--json']);
    if (r.code !== 0) return false;
    const agents = (JSON.parse(r.stdout) as { agents: { vm: string; connected: boolean }[] }).agents;
    return agents.some((a) => a.vm === 'vm-agent' && a.connected);
  };

  it("a real agent's session through a follower reconnects after the leader is SIGKILLed and shows in headroomctl agents", async () => {
    await followerIsNotLeader();
    const config = idleAgentConfig([
      `coordinator: ${follower.address}`,
      'vm: vm-agent',
      `host: ${follower.host}`,
      `controlSocket: ${path.join(tempDir(), 'agent.sock')}`,
    ]);
    agent = startAgent(['run', '--config', config]);
    await waitFor(() => /session up/.test(agent!.stderr()), 30_000, 'the agent session up');
    await waitFor(agentConnected, 30_000, 'the agent listed as connected');
    const upsBefore = agent.stderr().match(/session up/g)!.length;

    await killLeader();
    await waitFor(() => /session lost/.test(agent!.stderr()), 60_000, 'the agent to notice the leader change');
    await waitFor(() => agent!.stderr().match(/session up/g)!.length > upsBefore, 60_000, 'the agent session up again');
    await waitFor(agentConnected, 60_000, 'the agent listed as connected by the new leader');
  });

  it('a waiting Acquire through a follower is granted after a leader change, under its request id', async () => {
    await followerIsNotLeader();
    const request = (requestId: string, vm: string) => ({ requestId, host: 'waits-host', vm });
    const token = grantedToken(await acquireRetrying(clients!, request('held', 'vm-held')));
    let queued = 0;
    const waiting = acquireRetrying(clients!, request('waiting', 'vm-waiting'), { onQueued: () => queued++ });
    await waitFor(() => queued > 0, 30_000, 'the second request queued behind the held token');

    await killLeader();
    // The new leader restored the held token; releasing it lets the waiting request through.
    await waitFor(
      () =>
        release(clients!, token).then(
          () => true,
          () => false,
        ),
      60_000,
      'the held token released through the new leader',
    );
    const granted = grantedToken(await waiting);
    assert.ok(granted.fencing > token.fencing, `fencing ${granted.fencing} after ${token.fencing}`);
    // One grant for the request id, whichever leader decided it: asking again answers the same token.
    const again = grantedToken(await acquireRetrying(clients!, request('waiting', 'vm-waiting')));
    assert.equal(again.tokenId, granted.tokenId);
  });

  it('headroomctl history --follow through a follower resumes after a leader change, losing and repeating nothing', async () => {
    await followerIsNotLeader();
    const listSeqs = async () =>
      (await unary(clients!.admin.ListHistory.bind(clients!.admin), { limit: 10_000 })).events
        .map((e) => e.seq)
        .sort((a, b) => a - b);
    const startSeq = (await listSeqs()).at(-1) ?? 0;
    const follow = spawnCtl(['--coordinator', follower.address, '--json', 'history', '--all', '--follow']);
    const followed = () =>
      follow
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { seq: number }).seq)
        .filter((seq) => seq > startSeq);
    const churn = async (tag: string) => {
      for (let i = 0; i < 3; i++) {
        const request = {
          requestId: `follow-${tag}-${i}`,
          host: `follow-host-${tag}-${i}`,
          vm: `vm-follow-${tag}-${i}`,
        };
        await release(clients!, grantedToken(await acquireRetrying(clients!, request)));
      }
    };
    await churn('before');
    await waitFor(() => followed().length >= 6, 30_000, 'the follow to print the events before the leader change');

    await killLeader();
    await churn('after');
    const listed = (await listSeqs()).filter((seq) => seq > startSeq);
    await waitFor(
      () => followed().includes(listed.at(-1)!),
      60_000,
      `the follow to print event ${listed.at(-1)}\n${follow.stderr()}`,
    );
    assert.match(follow.stderr(), /following again/, 'the follow should have lost its stream to the old leader');
    const last = listed.at(-1)!;
    assert.deepEqual(
      followed().filter((seq) => seq <= last),
      listed,
    );
  });
});

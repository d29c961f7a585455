/**
 * Health that tells the truth in a cluster (issue 18): every member's front door answers grpc.health.v1
 * SERVING while a leader serves the coordination, NOT_SERVING (an answer, not an error) once etcd's quorum
 * is gone and the leader has stepped down, and SERVING again once quorum returns. /healthz is served by the
 * leader alone: the followers run no HTTP listener.
 */
import { strict as assert } from 'node:assert';
import { type ClusterMembers, type Member, startMembers } from '../helpers/cluster-members';
import { type EtcdCluster, startEtcdCluster } from '../helpers/etcd-cluster';
import { grpcHealth, httpHealth } from '../helpers/health';
import { freePorts } from '../helpers/ports';
import { waitFor } from '../helpers/wait';

describe('cluster health', function () {
  this.timeout(5 * 60_000);
  let etcd: EtcdCluster | undefined;
  let members: ClusterMembers | undefined;

  afterEach(function () {
    if (this.currentTest?.state !== 'failed' || !members) return;
    console.log(`      the members' logs are kept in ${members.keepLogs()}`);
  });

  after(async () => {
    await members?.stopAll();
    await etcd?.cleanup();
  });

  /** Waits until every member's front door answers Check with `status`; a call's error is not an answer. */
  async function waitAll(status: string, what: string): Promise<void> {
    let answers: string[] = [];
    await waitFor(
      async () => {
        answers = await Promise.all(
          members!.members.map((m) => grpcHealth(m.address).catch((e: Error) => `error: ${e.message}`)),
        );
        return answers.every((a) => a === status);
      },
      120_000,
      what,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; the members answered last: ${answers.join(' | ')}`);
    });
  }

  it('answers SERVING with a leader, NOT_SERVING at every member without etcd quorum, SERVING again after', async () => {
    etcd = await startEtcdCluster();
    const httpPorts = await freePorts(3);
    const http = (m: Member) => `http://127.0.0.1:${httpPorts[m.index]}`;
    members = await startMembers({
      endpoints: etcd.endpoints,
      electionTtl: '2s',
      config: (m) => `http:\n  listen: 127.0.0.1:${httpPorts[m.index]}\n`,
    });
    const leader = await members.waitLeader();
    await waitAll('SERVING', 'every member SERVING with a leader');
    // /healthz is the leader's: a follower has no HTTP listener to answer.
    assert.deepEqual(await httpHealth(http(leader)), { status: 200, text: 'SERVING\n' });
    for (const m of members.members.filter((f) => f !== leader))
      await assert.rejects(httpHealth(http(m)), /fetch failed/);

    const restore = await etcd.withoutQuorum();
    // The leader's election lease cannot be kept alive without quorum: it steps down, and no member can be
    // elected; each door then answers NOT_SERVING itself (or forwards to a leader already refusing).
    await waitAll('NOT_SERVING', 'every member NOT_SERVING without quorum');

    await restore();
    const next = await members.waitLeader();
    await waitAll('SERVING', 'every member SERVING again once quorum returned');
    assert.deepEqual(await httpHealth(http(next)), { status: 200, text: 'SERVING\n' });
  });
});

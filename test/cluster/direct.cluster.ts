/**
 * Clients go straight to the leader (common/client/leader-channel.ts): a member's front door names the
 * leader in its answers, and the client's next calls go to the leader's own address — still served when
 * the member it was given dies — and back through the members, to the next leader, when the leader dies.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../common/client/connection';
import { type ClusterMembers, startMembers } from '../helpers/cluster-members';
import { type EtcdCluster, startEtcdCluster } from '../helpers/etcd-cluster';
import { waitFor } from '../helpers/wait';

describe('cluster: clients go straight to the leader', function () {
  this.timeout(5 * 60_000);
  let etcd: EtcdCluster | undefined;
  let members: ClusterMembers | undefined;
  const opened: Clients[] = [];

  before(async () => {
    etcd = await startEtcdCluster();
    members = await startMembers({ endpoints: etcd.endpoints, electionTtl: '2s' });
    await members.waitLeader();
  });

  after(async () => {
    for (const c of opened) c.close();
    await members?.stopAll();
    await etcd?.cleanup();
  });

  const open = (address: string) => {
    const c = connect(address, grpc.credentials.createInsecure());
    opened.push(c);
    return c;
  };
  /** ListHosts until it answers: a member that has not yet seen the leader answers UNAVAILABLE at once. */
  const served = (c: Clients) =>
    waitFor(
      () =>
        unary(c.admin.ListHosts.bind(c.admin), {}).then(
          () => true,
          () => false,
        ),
      60_000,
      'a call to be served',
    );

  it('sends the calls of a client given one follower to the leader, which serves them once that follower is dead', async () => {
    const leader = await members!.waitLeader();
    const follower = members!.members.find((m) => m !== leader)!;
    const c = open(follower.address);
    assert.equal(c.direct(), undefined);
    await served(c);
    await waitFor(() => c.direct() === leader.peer, 60_000, 'calls to go straight to the leader');
    await members!.kill(follower);
    // Only the leader can answer now: the client's one member is gone.
    assert.ok(Array.isArray((await unary(c.admin.ListHosts.bind(c.admin), {})).hosts));
    await members!.restart(follower);
  });

  it('falls back to the members when the leader dies, and goes straight to the next one they name', async () => {
    const c = open(members!.addressList);
    await served(c);
    const old = await members!.waitLeader();
    await waitFor(() => c.direct() === old.peer, 60_000, 'calls to go straight to the leader');
    await members!.kill(old);
    const next = await members!.waitLeader(60_000, old);
    await served(c);
    await waitFor(() => c.direct() === next.peer, 60_000, 'calls to go straight to the next leader');
    await members!.restart(old);
  });
});

/**
 * Placement from every host (issue 17 point 5): each member runs its own host's placement source and
 * publishes it in etcd; the leader, whichever member it is, resolves every host's VM names to their
 * identities — also after a leader change — and applies the migrations a member publishes to its rules.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import type { Lease } from 'etcd3';
import { type Clients, connect, unary } from '../../common/client/connection';
import { createLogger } from '../../common/util/log';
import { publishPlacement } from '../../coordinator/cluster/host-placements';
import type { v1 } from '../../proto';
import { type ClusterMembers, startMembers } from '../helpers/cluster-members';
import { type EtcdCluster, startEtcdCluster } from '../helpers/etcd-cluster';
import { acquireRetrying, grantedToken, release } from '../helpers/token-client';
import { waitFor } from '../helpers/wait';

const uuidOf = (i: number) => `0000000${i}-1111-4222-8333-444455556666`;
const log = createLogger({ level: 'silent' });

describe('cluster: placement from every host', function () {
  this.timeout(5 * 60_000);
  let etcd: EtcdCluster | undefined;
  let members: ClusterMembers | undefined;
  let clients: Clients | undefined;
  let lease: Lease | undefined;
  let n = 0;

  before(async () => {
    etcd = await startEtcdCluster();
    members = await startMembers({
      endpoints: etcd.endpoints,
      electionTtl: '2s',
      args: ['--lease-ttl', '5m'],
      config: (m) => `placement:\n  static:\n    - name: web-h${m.index}\n      uuid: ${uuidOf(m.index)}\n`,
    });
    await members.waitLeader();
    clients = connect(members.addressList, grpc.credentials.createInsecure());
  });

  after(async () => {
    await lease?.revoke().catch(() => undefined);
    clients?.close();
    await members?.stopAll();
    await etcd?.cleanup();
  });

  const acquire = (kind: 'GUEST' | 'HYPERVISOR', host: string, vm: string, onQueued?: () => void) =>
    acquireRetrying(
      clients!,
      { requestId: `placement-${++n}`, kind: `TOKEN_KIND_${kind}`, host, vm },
      onQueued ? { onQueued } : {},
    );

  /** Waits until every member's VM, named by its name on its host, is one identity to the leader. */
  const everyHostResolves = (what: string) =>
    waitFor(
      async () => {
        for (const m of members!.members) {
          const t = grantedToken(await acquire('GUEST', m.host, `web-h${m.index}`));
          await release(clients!, t);
          if (t.vm !== uuidOf(m.index)) return false;
        }
        return true;
      },
      60_000,
      what,
    );

  it("resolves every host's VM names on the leader, and again after a leader change", async () => {
    // A member publishes its placement once it is up: wait until the leader has every host's.
    await everyHostResolves("every host's names resolved");
    const old = await members!.waitLeader();
    await members!.kill(old);
    await members!.waitLeader(60_000, old);
    await members!.restart(old);
    await everyHostResolves("every host's names resolved by the new leader");
    // Each host's placement is shown by the leader, as its member reads it.
    const { hosts } = await unary(clients!.admin.ListHosts.bind(clients!.admin), {});
    for (const m of members!.members) {
      const host = hosts.find((h) => h.host === m.host);
      assert.equal(host?.placementSource, 'static', m.host);
      assert.deepEqual(
        host?.placement.map((v) => [v.name, v.uuid]),
        [[`web-h${m.index}`, uuidOf(m.index)]],
      );
    }
  });

  it("applies a member's published migration: the VM's hypervisor backups wait for its end", async () => {
    const host = members!.members[1].host;
    const vm = uuidOf(1);
    lease = members!.client.lease(30);
    const published = publishPlacement(
      {
        put: (key, value) =>
          lease!
            .put(key)
            .value(value)
            .exec()
            .then(() => undefined),
        onRegistered: () => {},
      },
      `/headroom/${members!.cluster}/`,
      host,
      log,
    );
    await published.migrations.migrationStarted(host, vm, 'web-h1', 'in');
    const history = async (type: v1.HistoryEventType) =>
      (await unary(clients!.admin.ListHistory.bind(clients!.admin), { vm, limit: 1_000 })).events.filter(
        (e) => e.type === type && e.host === host,
      );
    await waitFor(
      async () => (await history('HISTORY_EVENT_TYPE_VM_MIGRATING')).length > 0,
      30_000,
      'the migration recorded by the leader',
    );
    let queued = false;
    const waiting = acquire('HYPERVISOR', host, 'web-h1', () => (queued = true));
    await waitFor(() => queued, 30_000, 'the hypervisor request queued behind the migration');

    await published.migrations.migrationEnded(host, vm, 'web-h1', 'in', 'arrived');
    const granted = grantedToken(await waiting);
    assert.equal(granted.vm, vm);
    const migrated = await history('HISTORY_EVENT_TYPE_VM_MIGRATED');
    assert.equal(migrated.length, 1, JSON.stringify(migrated));
    assert.equal(migrated[0].vmName, 'web-h1');
    // Applied, the end is removed, so that a later leader does not apply it again.
    const key = `/headroom/${members!.cluster}/migration/${host}/${vm}`;
    await waitFor(async () => (await members!.client.get(key).string()) === null, 30_000, 'the applied end removed');
    await release(clients!, granted);
  });
});

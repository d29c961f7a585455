/**
 * The cluster's store (coordinator/cluster/etcd-store.ts) on a real etcd: what a leader commits is what the
 * next one loads; a commit after the leader's election key is gone writes nothing and says the leader
 * lost the lead; a batch larger than etcd's transaction limit goes through; the history reads back with its
 * filters; compaction keeps what active tokens and retries need.
 */
import { strict as assert } from 'node:assert';
import { Etcd3 } from 'etcd3';
import { EtcdStore, LeadershipLostError, MAX_OPS_PER_TXN } from '../../../coordinator/cluster/etcd-store';
import type { Lease } from '../../../coordinator/domain/lease';
import { type EtcdCluster, startEtcdCluster } from '../../helpers/etcd-cluster';
import { newLessor, req } from '../../unit/coordinator/domain/fixtures';

describe('the etcd store on a real etcd', function () {
  this.timeout(120_000);
  let etcd: EtcdCluster;
  let client: Etcd3;
  let n = 0;

  before(async () => {
    etcd = await startEtcdCluster({ members: 1 });
    client = new Etcd3({ hosts: etcd.endpoints });
  });

  after(async () => {
    client?.close();
    await etcd?.cleanup();
  });

  /** A fresh prefix, and an election key held under a lease, as a leader holds one. */
  async function leader() {
    const prefix = `/headroom/store-test-${++n}/`;
    const lease = client.lease(30);
    const key = `${prefix}election/leader/${await lease.grant()}`;
    await lease.put(key).value('127.0.0.1:1').exec();
    const { kvs } = await client.get(key).exec();
    const store = new EtcdStore(client, prefix, { key, createRevision: String(kvs[0].create_revision) });
    return { prefix, lease, store };
  }

  it('loads what the last leader committed: hosts, fencing, active tokens and ended requests, and the history', async () => {
    const { prefix, store } = await leader();
    const { lessor } = newLessor();
    await store.load(0);
    await store.commit(lessor.ensureHost('h1'));
    const grant = lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' }));
    await store.commit(grant.events);
    const lease = (grant.result as { lease: Lease }).lease;
    const second = lessor.acquire(req({ kind: 'GUEST', vm: 'vm2' }));
    await store.commit(second.events);
    const ended = (second.result as { lease: Lease }).lease;
    await store.commit(
      lessor.release(ended.tokenId, ended.fencing, { success: true, exitCode: 0, durationMs: 5, message: '' }),
    );

    const next = new EtcdStore(client, prefix, { key: '', createRevision: '0' });
    const snapshot = await next.load(0);
    assert.deepEqual(
      snapshot.leases.map((l) => [l.tokenId, l.fencing]),
      [[lease.tokenId, lease.fencing]],
    );
    assert.equal(snapshot.hosts.find((h) => h.name === 'h1')?.fencing, ended.fencing);
    assert.deepEqual(
      snapshot.ended.map((e) => e.requestId),
      [ended.requestId],
    );
    const history = await next.history({ limit: 100 });
    assert.deepEqual(
      history.map((r) => r.type),
      ['GRANTED', 'GRANTED', 'RELEASED'],
    );
    assert.deepEqual(
      history.map((r) => r.seq),
      [1, 2, 3],
    );
    assert.deepEqual(
      next.endedRuns('h1', 10).map((r) => r.vm),
      ['vm2'],
    );
    assert.deepEqual(
      next.lastSuccesses().map((s) => s.vm),
      ['vm2'],
    );
  });

  it('writes nothing once the election key is gone, and says the leader lost the lead', async () => {
    const { lease, store } = await leader();
    const { lessor } = newLessor();
    await store.load(0);
    await store.commit(lessor.ensureHost('h1'));
    await lease.revoke();
    const grant = lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' }));
    await assert.rejects(store.commit(grant.events), LeadershipLostError);
    assert.deepEqual((await store.load(0)).leases, [], 'the grant was not written');
  });

  it("commits a batch larger than etcd's transaction limit, and reads the history back with its filters", async () => {
    const { store } = await leader();
    const { lessor } = newLessor({ defaultPolicy: undefined });
    await store.load(0);
    // Grants on many hosts: one token and one host record each, well over MAX_OPS_PER_TXN operations.
    const events = [];
    const hosts = Math.ceil(MAX_OPS_PER_TXN * 0.75);
    for (let i = 0; i < hosts; i++) {
      events.push(...lessor.ensureHost(`h${i}`));
      events.push(...lessor.acquire(req({ kind: 'HYPERVISOR', vm: `vm${i}`, host: `h${i}` })).events);
    }
    const records = await store.commit(events);
    assert.equal(records.length, hosts);
    assert.equal((await store.load(0)).leases.length, hosts);
    const some = await store.history({ host: 'h7', limit: 10 });
    assert.deepEqual(
      some.map((r) => r.vm),
      ['vm7'],
    );
    const newest = await store.history({ limit: 3 });
    assert.deepEqual(
      newest.map((r) => r.seq),
      [hosts - 2, hosts - 1, hosts],
    );
    const after = await store.history({ limit: 100, afterSeq: hosts - 1 });
    assert.deepEqual(
      after.map((r) => r.seq),
      [hosts],
    );
    assert.deepEqual(await store.history({ limit: 10, types: ['RELEASED'] }), []);
  });

  it("compacts old history and ended tokens, keeping an active token and each job's newest run", async () => {
    const { store } = await leader();
    const { clock, lessor } = newLessor();
    await store.load(0);
    await store.commit(lessor.ensureHost('h1'));
    const held = lessor.acquire(req({ kind: 'GUEST', vm: 'held' }));
    await store.commit(held.events);
    for (let day = 0; day < 5; day++) {
      const run = lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' }));
      await store.commit(run.events);
      const l = (run.result as { lease: Lease }).lease;
      await store.commit(
        lessor.release(l.tokenId, l.fencing, { success: true, exitCode: 0, durationMs: 1, message: '' }),
      );
      clock.advance(86_400_000);
    }
    const now = clock.now();
    let removed = { history: 0, tokens: 0 };
    for (;;) {
      const r = await store.compactHistory({
        before: now - 2 * 86_400_000,
        maxRows: 1_000_000,
        keepEndedSince: now - 86_400_000,
        batch: 2,
      });
      if (r.history + r.tokens === 0) break;
      removed = { history: removed.history + r.history, tokens: removed.tokens + r.tokens };
    }
    assert.ok(removed.tokens > 0, JSON.stringify(removed));
    const snapshot = await store.load(0);
    assert.equal(snapshot.leases.length, 1, 'the active token stays');
    // Runs that ended before both the retention and the retry window went; the newest stays regardless.
    const runs = store.endedRuns('h1', 10);
    assert.ok(runs.length < 5 && runs.every((r) => r.endedAt >= now - 2 * 86_400_000), JSON.stringify(runs));
    assert.equal(runs.at(-1)?.endedAt, now - 86_400_000, "vm1's newest run stays");
    // The held token's grant is in the first page: a page with a record of an active token is kept.
    const history = await store.history({ limit: 1000 });
    assert.ok(history.some((r) => r.type === 'GRANTED' && r.vm === 'held'));
  });
});

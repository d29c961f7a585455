/**
 * The baseline of the cluster benchmark (bench/etcd-lock-cycle.ts) on a real 3-member etcd: it must do the
 * whole cycle it claims to measure, every time, and leave nothing behind. Its figures are the benchmark's
 * business; this checks only that they count real cycles.
 */
import { strict as assert } from 'node:assert';
import { Etcd3 } from 'etcd3';
import { runEtcdLockCycles } from '../../../bench/etcd-lock-cycle';
import { type EtcdCluster, startEtcdCluster } from '../../helpers/etcd-cluster';

describe('the plain etcd lock cycle of the cluster benchmark (bench/etcd-lock-cycle.ts)', function () {
  this.timeout(60_000);
  let cluster: EtcdCluster | undefined;
  let client: Etcd3 | undefined;

  after(async () => {
    client?.close();
    await cluster?.cleanup();
  });

  it('runs lease → create-if-absent txn → delete → revoke cycles at each concurrency, and leaves no key or lease', async () => {
    cluster = await startEtcdCluster();
    const phases = await runEtcdLockCycles({
      endpoints: cluster.endpoints,
      concurrencies: [1, 4],
      durationMs: 500,
      warmupMs: 200,
      keyPrefix: 'kit/lock/',
      memberPids: cluster.pids() as number[],
    });
    assert.deepEqual(
      phases.map((p) => p.concurrency),
      [1, 4],
    );
    for (const p of phases) {
      assert.ok(p.cycles > 0, `c=${p.concurrency}: cycles completed in the window`);
      assert.deepEqual(p.errors, [], `c=${p.concurrency}: no cycle failed`);
      assert.equal(p.conflicts, 0, `c=${p.concurrency}: every caller's key was free`);
      assert.ok(p.cycleMs.p50 > 0 && p.cycleMs.p50 <= p.cycleMs.p99 && p.cycleMs.p99 <= p.cycleMs.max);
      assert.ok(p.etcdCpuPercent > 0, "the members' CPU was read");
    }
    client = new Etcd3({ hosts: cluster.endpoints });
    assert.deepEqual(await client.getAll().prefix('kit/lock/').keys(), [], 'every key was deleted');
    assert.deepEqual((await client.leaseClient.leaseLeases()).leases, [], 'every lease was revoked');
  });
});

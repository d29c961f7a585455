/**
 * The etcd cluster the cluster tests stand on (test/helpers/etcd-cluster.ts), exercised on its own: three
 * real members of Debian's etcd, a real etcd3 client. What it must show is that the faults it offers do what
 * the cluster tests will assume: one member down leaves a working cluster, two down leave none, and
 * restarted members rejoin with their data.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { Etcd3 } from 'etcd3';
import { type EtcdCluster, startEtcdCluster } from '../../helpers/etcd-cluster';
import { waitFor } from '../../helpers/wait';

describe('a real 3-member etcd cluster for the cluster tests (test/helpers/etcd-cluster.ts)', function () {
  this.timeout(120_000);
  let cluster: EtcdCluster;
  const clients: Etcd3[] = [];
  /** A client of the given endpoints; closed after the tests. */
  const clientOf = (hosts: string[]) => {
    const client = new Etcd3({ hosts });
    clients.push(client);
    return client;
  };

  before(async () => {
    cluster = await startEtcdCluster();
  });

  after(async () => {
    clients.forEach((c) => c.close());
    await cluster?.cleanup();
  });

  it('starts healthy: one leader, and a write through one member is read back through each', async () => {
    assert.equal(new Set(cluster.endpoints).size, 3);
    assert.notEqual(await cluster.leader(), undefined);
    await clientOf([cluster.endpoints[0]]).put('kit/start').value('v1');
    for (const endpoint of cluster.endpoints) {
      assert.equal(await clientOf([endpoint]).get('kit/start').string(), 'v1', `read through ${endpoint}`);
    }
  });

  it('keeps taking writes with its leader killed, and the restarted member catches up on its old data', async () => {
    const leader = (await cluster.leader())!;
    await cluster.kill(leader);
    assert.equal(cluster.pids()[leader], undefined);
    const survivors = cluster.endpoints.filter((_, i) => i !== leader);
    const client = clientOf(survivors);
    // Until the survivors have elected a new leader (about one election timeout), a write may time out.
    await waitFor(
      () =>
        client
          .put('kit/one-down')
          .value('v2')
          .options({ deadline: Date.now() + 2_000 })
          .then(
            () => true,
            () => false,
          ),
      30_000,
      'a write with one member killed',
    );
    const newLeader = await cluster.leader();
    assert.ok(newLeader !== undefined && newLeader !== leader, `a survivor leads (${newLeader})`);

    await cluster.restart(leader);
    // A linearizable read through the restarted member alone: it answers only once it has the write it missed.
    assert.equal(await clientOf([cluster.endpoints[leader]]).get('kit/one-down').string(), 'v2');
  });

  it('refuses writes with two members killed, with a deadline error, and takes them again once they are back', async () => {
    await clientOf(cluster.endpoints).put('kit/before').value('v3');
    const restore = await cluster.withoutQuorum();
    assert.deepEqual(
      cluster.pids().map((p) => p !== undefined),
      [true, false, false],
    );
    const health = (await (await fetch(`${cluster.endpoints[0]}/health`)).json()) as { health: string };
    assert.equal(health.health, 'false', 'the survivor reports itself unhealthy');
    // The survivor holds the proposal until the caller's deadline: etcd has no quicker refusal for it.
    await assert.rejects(
      clientOf([cluster.endpoints[0]])
        .put('kit/no-quorum')
        .value('lost')
        .options({ deadline: Date.now() + 3_000 })
        .exec(),
      /deadline exceeded/i,
    );

    await restore();
    assert.ok(cluster.pids().every((p) => p !== undefined));
    // A new client: the first one's circuit breakers (etcd3's fault handling) may still be open.
    const client = clientOf(cluster.endpoints);
    await client.put('kit/after').value('v4');
    assert.equal(await client.get('kit/before').string(), 'v3', 'what was written before is intact');
    assert.equal(await client.get('kit/after').string(), 'v4');
  });

  it('answers nothing from a SIGSTOPped member, and serves again after SIGCONT', async () => {
    const follower = ((await cluster.leader())! + 1) % 3;
    cluster.stop(follower);
    const stopped = clientOf([cluster.endpoints[follower]]);
    await assert.rejects(
      stopped
        .get('kit/before')
        .options({ deadline: Date.now() + 1_000 })
        .string(),
      /deadline exceeded/i,
    );
    // The other two still make a quorum.
    await clientOf(cluster.endpoints.filter((_, i) => i !== follower))
      .put('kit/stopped')
      .value('v5');
    cluster.cont(follower);
    await cluster.waitHealthy();
    assert.equal(await clientOf([cluster.endpoints[follower]]).get('kit/stopped').string(), 'v5');
  });
});

describe('the etcd cluster helper with TLS', function () {
  this.timeout(60_000);
  let cluster: EtcdCluster | undefined;
  const clients: Etcd3[] = [];

  after(async () => {
    clients.forEach((c) => c.close());
    await cluster?.cleanup();
  });

  it('serves a client with a certificate of its CA, and refuses one without', async () => {
    cluster = await startEtcdCluster({ members: 1, tls: true });
    const tls = cluster.tls!;
    assert.match(cluster.endpoints[0], /^https:\/\/127\.0\.0\.1:\d+$/);
    const rootCertificate = fs.readFileSync(tls.caFile);
    // grpc-js would send the IP address as the TLS ServerName (against RFC 6066: Node warns, DEP0123); the
    // server certificate also names localhost.
    const grpcOptions = { 'grpc.ssl_target_name_override': 'localhost' };
    const withCertificate = new Etcd3({
      hosts: cluster.endpoints,
      grpcOptions,
      credentials: {
        rootCertificate,
        certChain: fs.readFileSync(tls.certFile),
        privateKey: fs.readFileSync(tls.keyFile),
      },
    });
    const without = new Etcd3({ hosts: cluster.endpoints, grpcOptions, credentials: { rootCertificate } });
    clients.push(withCertificate, without);
    await withCertificate.put('kit/tls').value('v1');
    assert.equal(await withCertificate.get('kit/tls').string(), 'v1');
    await assert.rejects(
      without
        .get('kit/tls')
        .options({ deadline: Date.now() + 10_000 })
        .string(),
      /certificate/,
      'the TLS handshake fails for want of a client certificate',
    );
  });
});

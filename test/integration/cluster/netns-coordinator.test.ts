/**
 * A coordinator run inside a network namespace (startCoordinator's `namespace`), as the cluster tests will
 * run the member they cut off: it serves TLS on the namespace's address, its clients outside reach it
 * while the link is up, not after cut(), and again after restore(). Needs root (ip netns): skipped, saying
 * so, when not root.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, tlsCredentials, unary } from '../../../common/client/connection';
import { createLogger } from '../../../common/util/log';
import { initPki } from '../../../coordinator/pki/init';
import { pkiFiles } from '../../../coordinator/pki/state-dir';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { createPartition, needsNamespaces, type Partition } from '../../helpers/netns';
import { waitFor } from '../../helpers/wait';

describe('a coordinator in a network namespace (startCoordinator with namespace)', function () {
  this.timeout(90_000);
  let partition: Partition | undefined;
  let coordinator: RunningCoordinator | undefined;
  let clients: Clients | undefined;

  before(needsNamespaces);

  after(async () => {
    clients?.close();
    await coordinator?.stop();
    partition?.remove();
  });

  it('serves clients outside while the link is up, none after cut(), and again after restore()', async () => {
    partition = createPartition();
    const pki = pkiFiles(tempDir('headroom-netns-coordinator-'));
    await initPki({
      dir: pki.dir,
      host: 'ns-host',
      serverNames: [partition.peerAddress],
      admin: 'admin',
      log: createLogger({ level: 'silent' }),
    });
    coordinator = await startCoordinator({
      host: 'ns-host',
      namespace: partition.namespace,
      listen: `${partition.peerAddress}:0`,
      args: ['--pki-dir', pki.dir],
    });
    assert.equal(coordinator.address.split(':')[0], partition.peerAddress);
    const pem = (f: string) => fs.readFileSync(f);
    clients = connect(
      coordinator.address,
      tlsCredentials(coordinator.address, { ca: pem(pki.caCert), cert: pem(pki.adminCert), key: pem(pki.adminKey) }),
    );
    const listHosts = (deadlineMs: number) => unary(clients!.admin.ListHosts.bind(clients!.admin), {}, deadlineMs);

    const hosts = await listHosts(10_000);
    assert.deepEqual(
      hosts.hosts.map((h) => h.host),
      ['ns-host'],
    );

    partition.cut();
    await assert.rejects(listHosts(2_000), (e: grpc.ServiceError) => {
      assert.ok(
        [grpc.status.DEADLINE_EXCEEDED, grpc.status.UNAVAILABLE].includes(e.code),
        `cut off: ${e.code} ${e.details}`,
      );
      return true;
    });
    assert.equal(coordinator.process.exitCode, null, 'the coordinator itself runs on');

    partition.restore();
    await waitFor(
      () =>
        listHosts(2_000).then(
          () => true,
          () => false,
        ),
      60_000,
      'a call through once the link is back',
    );
  });
});

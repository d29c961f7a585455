/**
 * Durability (rule 6): the coordinator is killed with SIGKILL while tokens are held and restarted on the
 * same SQLite file. Holders go on renewing with the same token and fencing number, nothing conflicting is
 * granted while the restored leases live, retried request ids get no second token, and the history is intact.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { unary, type Clients } from '../../../common/client/connection';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { acquire, connectPlain, grant, release, renew, statusOf } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';

describe('coordinator killed with SIGKILL and restarted on the same database', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;

  afterEach(async () => {
    clients?.close();
    await coordinator?.stop();
  });

  it('restores held tokens: holders renew, nothing conflicting is granted, history is intact', async () => {
    coordinator = await startCoordinator({ host: 'crash-host' });
    clients = connectPlain(coordinator.address);
    const guestRequest = randomUUID();
    const guest = await grant(clients, { requestId: guestRequest, kind: 'TOKEN_KIND_GUEST', vm: 'vm1' });
    const guest2 = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm2' });
    await release(clients, guest2);
    const historyBefore = await unary(clients.admin.ListHistory.bind(clients.admin), { limit: 1000 });

    await coordinator.kill();
    clients.close();
    coordinator = await startCoordinator({ host: 'crash-host', dbPath: coordinator.dbPath });
    clients = connectPlain(coordinator.address);

    const renewed = await renew(clients, guest);
    assert.ok(renewed.expiresUnixMs > Date.now(), 'the restored lease was renewed with its token and fencing number');

    const hv = acquire(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'vm3' });
    await waitFor(() => hv.updates.length > 0);
    assert.ok(hv.updates[0].queued, 'a HYPERVISOR request waits while the restored GUEST lease lives');
    const sameVm = acquire(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm1' });
    await waitFor(() => sameVm.updates.length > 0);
    assert.ok(sameVm.updates[0].queued, 'a second token for the same VM waits');

    const retried = await grant(clients, { requestId: guestRequest, kind: 'TOKEN_KIND_GUEST', vm: 'vm1' });
    assert.deepEqual([retried.tokenId, retried.fencing], [guest.tokenId, guest.fencing], 'a retry gets the same token');

    const historyAfter = await unary(clients.admin.ListHistory.bind(clients.admin), { limit: 1000 });
    assert.deepEqual(historyAfter.events.slice(0, historyBefore.events.length), historyBefore.events);
    assert.ok(historyAfter.events.some((e) => e.type === 'HISTORY_EVENT_TYPE_RESTORED' && e.tokenId === guest.tokenId));

    await release(clients, guest);
    const hvToken = (await hv.done).granted!;
    assert.ok(hvToken.fencing > guest2.fencing, 'fencing numbers go on from the stored counter');
    sameVm.cancel();
    await release(clients, hvToken);
  });

  it('expires a restored lease that nobody renews, then serves the next request', async () => {
    coordinator = await startCoordinator({ host: 'crash-host', args: ['--lease-ttl', '1500ms'] });
    clients = connectPlain(coordinator.address);
    const orphan = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'vm1' });
    await coordinator.kill();
    clients.close();
    coordinator = await startCoordinator({
      host: 'crash-host',
      dbPath: coordinator.dbPath,
      args: ['--lease-ttl', '1500ms'],
    });
    clients = connectPlain(coordinator.address);
    const next = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm2' });
    assert.ok(next.fencing > orphan.fencing);
    const history = await unary(clients.admin.ListHistory.bind(clients.admin), { vm: 'vm1' });
    assert.deepEqual(
      history.events.map((e) => e.type),
      ['HISTORY_EVENT_TYPE_GRANTED', 'HISTORY_EVENT_TYPE_RESTORED', 'HISTORY_EVENT_TYPE_EXPIRED'],
    );
    assert.equal((await statusOf(renew(clients, orphan))).code, grpc.status.FAILED_PRECONDITION);
    await release(clients, next);
  });
});

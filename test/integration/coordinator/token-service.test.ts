/**
 * TokenService and AdminService over real gRPC against a real coordinator process and SQLite file.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { unary } from '../../../common/client/connection';
import { coordinatorSuite } from '../../helpers/coordinator-suite';
import { acquire, grant, release, renew, statusOf } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { grpcHealth } from '../../helpers/health';

describe('coordinator over gRPC', function () {
  const suite = coordinatorSuite({ host: 'host-a' });

  it('grants, renews and releases a token, and records each step in the history', async () => {
    const token = await grant(suite.clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-grant', job: 'restic' });
    assert.equal(token.kind, 'TOKEN_KIND_GUEST');
    assert.equal(token.host, 'host-a');
    assert.ok(token.fencing >= 1);
    const renewed = await renew(suite.clients, token);
    assert.ok(renewed.expiresUnixMs >= token.expiresUnixMs);
    await release(suite.clients, token);
    const history = await unary(suite.clients.admin.ListHistory.bind(suite.clients.admin), { vm: 'vm-grant' });
    assert.deepEqual(
      history.events.map((e) => e.type),
      ['HISTORY_EVENT_TYPE_GRANTED', 'HISTORY_EVENT_TYPE_RENEWED', 'HISTORY_EVENT_TYPE_RELEASED'],
    );
    assert.ok(history.events.every((e) => e.tokenId === token.tokenId));
  });

  it('queues a hypervisor request behind a guest backup, streaming position and estimate, then grants it', async () => {
    const guest = await grant(suite.clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-q1', expectedDurationMs: 120_000 });
    const hv = acquire(suite.clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'vm-q2' });
    await waitFor(() => hv.updates.length > 0);
    const queued = hv.updates[0].queued!;
    assert.equal(queued.position, 1);
    assert.equal(queued.estimatedStartUnixMs, guest.slot!.expectedEndUnixMs);
    assert.match(queued.waitingFor, /GUEST backup/);
    const tokens = await unary(suite.clients.admin.ListTokens.bind(suite.clients.admin), { host: 'host-a' });
    assert.equal(tokens.queued.length, 1);
    await release(suite.clients, guest);
    const final = await hv.done;
    assert.equal(final.granted!.kind, 'TOKEN_KIND_HYPERVISOR');
    assert.ok(final.granted!.fencing > guest.fencing);
    await release(suite.clients, final.granted!);
  });

  it('withdraws a waiting request when its caller cancels', async () => {
    const guest = await grant(suite.clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-c1' });
    const hv = acquire(suite.clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'vm-c2' });
    await waitFor(() => hv.updates.length > 0);
    hv.cancel();
    await waitFor(
      async () => (await unary(suite.clients.admin.ListTokens.bind(suite.clients.admin), {})).queued.length === 0,
    );
    // With the hypervisor request gone, a new guest is no longer held back.
    const other = await grant(suite.clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-c3' });
    await release(suite.clients, other);
    await release(suite.clients, guest);
  });

  it('answers a retried request id with the same token', async () => {
    const requestId = randomUUID();
    const first = await grant(suite.clients, { requestId, vm: 'vm-idem' });
    const second = await grant(suite.clients, { requestId, vm: 'vm-idem' });
    assert.deepEqual([second.tokenId, second.fencing], [first.tokenId, first.fencing]);
    await release(suite.clients, first);
    const third = await acquire(suite.clients, { requestId, vm: 'vm-idem' }).done;
    assert.equal(third.denied?.reason, 'DENY_REASON_REQUEST_ID_USED');
  });

  it('refuses bad input with INVALID_ARGUMENT naming the field, and changes nothing', async () => {
    const before = await unary(suite.clients.admin.ListHistory.bind(suite.clients.admin), { limit: 1 });
    const cases: [Record<string, unknown>, string][] = [
      [{ requestId: '' }, 'request_id'],
      [{ kind: 'TOKEN_KIND_UNSPECIFIED' }, 'kind'],
      [{ kind: 7 }, 'kind'],
      [{ vm: '' }, 'vm'],
      [{ vm: 'a b' }, 'vm'],
      [{ host: '../etc' }, 'host'],
      [{ ttlMs: 5 }, 'ttl_ms'],
      [{ priority: 100000 }, 'priority'],
      [{ latestStartUnixMs: Date.now() + 10_000, windowEndUnixMs: Date.now() }, 'latest_start_unix_ms'],
    ];
    for (const [request, field] of cases) {
      const { code, details } = await statusOf(acquire(suite.clients, request).done);
      assert.equal(code, grpc.status.INVALID_ARGUMENT, JSON.stringify(request));
      assert.match(details, new RegExp(`^${field}:`), details);
    }
    const bad = await statusOf(renew(suite.clients, { tokenId: 'x', fencing: 0 }));
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /^fencing:/);
    const after = await unary(suite.clients.admin.ListHistory.bind(suite.clients.admin), { limit: 1 });
    assert.equal(after.events.at(-1)?.seq, before.events.at(-1)?.seq, 'no history was written');
  });

  it('answers NOT_FOUND for unknown tokens and hosts, FAILED_PRECONDITION for a stale fencing number', async () => {
    assert.equal(
      (await statusOf(renew(suite.clients, { tokenId: 'no-such-token', fencing: 1 }))).code,
      grpc.status.NOT_FOUND,
    );
    assert.equal(
      (await statusOf(unary(suite.clients.admin.PauseHost.bind(suite.clients.admin), { host: 'nowhere' }))).code,
      grpc.status.NOT_FOUND,
    );
    const token = await grant(suite.clients, { vm: 'vm-stale' });
    const stale = await statusOf(release(suite.clients, { tokenId: token.tokenId, fencing: token.fencing + 1 }));
    assert.equal(stale.code, grpc.status.FAILED_PRECONDITION);
    assert.match(stale.details, /stale fencing/);
    await release(suite.clients, token);
    assert.equal((await statusOf(renew(suite.clients, token))).code, grpc.status.FAILED_PRECONDITION);
  });

  it('holds grants while the host is paused and grants on resume', async () => {
    await unary(suite.clients.admin.PauseHost.bind(suite.clients.admin), { host: 'host-a', reason: 'maintenance' });
    const waiting = acquire(suite.clients, { vm: 'vm-pause' });
    await waitFor(() => waiting.updates.length > 0);
    assert.equal(waiting.updates[0].queued!.waitingFor, 'host is paused');
    const hosts = await unary(suite.clients.admin.ListHosts.bind(suite.clients.admin), {});
    assert.equal(hosts.hosts.find((h) => h.host === 'host-a')!.pauseReason, 'maintenance');
    await unary(suite.clients.admin.ResumeHost.bind(suite.clients.admin), { host: 'host-a' });
    const token = (await waiting.done).granted!;
    await release(suite.clients, token);
  });

  it("revokes a token on an administrator's word; its holder can no longer renew", async () => {
    const token = await grant(suite.clients, { vm: 'vm-revoke' });
    await unary(suite.clients.admin.RevokeToken.bind(suite.clients.admin), {
      tokenId: token.tokenId,
      reason: 'testing',
    });
    const { code, details } = await statusOf(renew(suite.clients, token));
    assert.equal(code, grpc.status.FAILED_PRECONDITION);
    assert.match(details, /revoked/);
  });

  it('changes only the policy fields that are sent', async () => {
    const before = await unary(suite.clients.admin.GetPolicy.bind(suite.clients.admin), { host: 'host-a' });
    const after = await unary(suite.clients.admin.SetPolicy.bind(suite.clients.admin), {
      host: 'host-a',
      maxGuestTokens: 7,
    });
    assert.deepEqual(after, { ...before, maxGuestTokens: 7 });
    const bad = await statusOf(
      unary(suite.clients.admin.SetPolicy.bind(suite.clients.admin), { host: 'host-a', leaseTtlMs: 1 }),
    );
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /^lease_ttl_ms:/);
  });

  it('serves the standard health service', async () => {
    assert.equal(await grpcHealth(suite.coordinator.address, 'headroom.v1.TokenService'), 'SERVING');
  });

  it('serves reflection, so stock tools can list and describe the services', async () => {
    const pkg = loadPackage(require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'));
    const client = new pkg.grpc.reflection.v1.ServerReflection(
      suite.coordinator.address,
      grpc.credentials.createInsecure(),
    );
    const call = client.ServerReflectionInfo();
    const answer = (request: object) =>
      new Promise<any>((resolve, reject) => {
        call.once('data', resolve);
        call.once('error', reject);
        call.write(request);
      });
    const list = await answer({ listServices: '' });
    const names = list.listServicesResponse.service.map((s: { name: string }) => s.name);
    for (const name of ['headroom.v1.TokenService', 'headroom.v1.AgentService', 'headroom.v1.AdminService']) {
      assert.ok(names.includes(name), `${name} in ${names}`);
    }
    const described = await answer({ fileContainingSymbol: 'headroom.v1.TokenService' });
    assert.ok(described.fileDescriptorResponse.fileDescriptorProto.length > 0);
    call.end();
    client.close();
  });
});

/** A stock service's package, loaded from its .proto the way any gRPC tool would. */
function loadPackage(file: string): any {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { enums: String }));
}

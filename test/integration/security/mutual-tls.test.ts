/**
 * Issue 6's security acceptance, over real gRPC on loopback TLS with real certificates against a real
 * coordinator process: callers without a certificate, with one from another CA or a revoked one, and
 * agents reaching beyond their VM or role, are each refused with UNAUTHENTICATED or PERMISSION_DENIED and
 * a log line; the same callers within their rights are served.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, unary } from '../../../common/client/connection';
import { initPki } from '../../../coordinator/pki/init';
import type { v1 } from '../../../proto';
import { acquire, grant, release, renew, statusOf } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { type PkiFixture, adminPem, hostPem, silent, startPkiCoordinator } from './pki-fixture';

const listHosts = (c: Clients) => unary(c.admin.ListHosts.bind(c.admin), {});

describe('security: mutual TLS, roles and revocation (real coordinator, real certificates)', function () {
  this.timeout(60_000);
  let f: PkiFixture;
  let vm1: Clients;
  let vm1Serial: string;
  let host: Clients;

  before(async () => {
    f = await startPkiCoordinator();
    const pem = await f.enrollAgent('vm1');
    vm1 = f.clients(pem);
    vm1Serial = pem.serial;
    host = f.clients(hostPem(f.pkiDir));
  });

  after(async () => {
    await f?.close();
  });

  /** Waits until the coordinator's log has a refusal matching all of `parts`. */
  const refusalLogged = (...parts: RegExp[]) =>
    waitFor(
      () =>
        f.coordinator
          .log()
          .split('\n')
          .some((l) => /WARN +call refused/.test(l) && parts.every((p) => p.test(l))),
      5_000,
      `a refusal log line matching ${parts.join(' ')}`,
    );

  it('refuses a client without a certificate with UNAUTHENTICATED, and logs it', async () => {
    const anonymous = f.clients({ caFile: path.join(f.pkiDir, 'ca.pem') });
    const admin = await statusOf(listHosts(anonymous));
    assert.equal(admin.code, grpc.status.UNAUTHENTICATED);
    assert.match(admin.details, /client certificate issued by this coordinator's CA is required/);
    const token = await statusOf(acquire(anonymous, { vm: 'vm1', kind: 'TOKEN_KIND_GUEST' }).done);
    assert.equal(token.code, grpc.status.UNAUTHENTICATED);
    await refusalLogged(
      /method=AdminService\.ListHosts/,
      /code=UNAUTHENTICATED/,
      /certificate issued by this coordinator's CA is required/,
    );
    await refusalLogged(/method=TokenService\.Acquire/, /code=UNAUTHENTICATED/);
  });

  it('refuses a certificate from another CA with UNAUTHENTICATED, and logs it', async () => {
    const otherDir = path.join(f.dir, 'other-ca');
    await initPki({ dir: otherDir, host: 'host-a', serverNames: ['localhost'], admin: 'intruder', log: silent });
    // Trusts our coordinator, but presents an admin certificate our CA never signed.
    const intruder = f.clients({ ...adminPem(otherDir), caFile: path.join(f.pkiDir, 'ca.pem') });
    const s = await statusOf(listHosts(intruder));
    assert.equal(s.code, grpc.status.UNAUTHENTICATED);
    await refusalLogged(/method=AdminService\.ListHosts/, /code=UNAUTHENTICATED/);
  });

  it("refuses an agent asking for another VM's token with PERMISSION_DENIED, and logs it", async () => {
    const s = await statusOf(acquire(vm1, { vm: 'vm2', kind: 'TOKEN_KIND_GUEST' }).done);
    assert.equal(s.code, grpc.status.PERMISSION_DENIED);
    assert.match(s.details, /agent vm1@host-a may act only for its own VM, not for vm "vm2"/);
    await refusalLogged(
      /method=TokenService\.Acquire/,
      /code=PERMISSION_DENIED/,
      /identity="agent vm1@host-a"/,
      new RegExp(`serial=${vm1Serial}`),
    );
  });

  it('refuses an agent asking for a HYPERVISOR token with PERMISSION_DENIED, and logs it', async () => {
    const s = await statusOf(acquire(vm1, { vm: 'vm1', kind: 'TOKEN_KIND_HYPERVISOR' }).done);
    assert.equal(s.code, grpc.status.PERMISSION_DENIED);
    assert.match(s.details, /GUEST tokens only, not HYPERVISOR/);
    await refusalLogged(/code=PERMISSION_DENIED/, /GUEST tokens only, not HYPERVISOR/);
  });

  it('refuses an agent making an admin call with PERMISSION_DENIED, and logs it', async () => {
    const s = await statusOf(listHosts(vm1));
    assert.equal(s.code, grpc.status.PERMISSION_DENIED);
    const pki = await statusOf(unary(vm1.pki.ListCertificates.bind(vm1.pki), {}));
    assert.equal(pki.code, grpc.status.PERMISSION_DENIED);
    await refusalLogged(
      /method=AdminService\.ListHosts/,
      /code=PERMISSION_DENIED/,
      /needs the admin role; the caller is agent vm1@host-a/,
    );
    await refusalLogged(/method=PkiService\.ListCertificates/, /code=PERMISSION_DENIED/);
  });

  it("refuses an agent's session that says hello as another VM", async () => {
    const call = vm1.agent.Session();
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {});
    call.write({ hello: { vm: 'vm2', host: '', agentVersion: 'test', hostname: 'x', jobs: [] } });
    const err = await ended;
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.match(err.details, /session of its own VM only/);
  });

  it('serves each role within its rights: agent GUEST for its VM, host HYPERVISOR on its host, admin everything', async () => {
    const guest = await grant(vm1, { vm: 'vm1', kind: 'TOKEN_KIND_GUEST' });
    await renew(vm1, guest);
    // Another caller cannot touch the agent's token: the host role takes HYPERVISOR tokens only.
    assert.equal((await statusOf(renew(host, guest))).code, grpc.status.PERMISSION_DENIED);
    await release(vm1, guest);
    assert.equal(
      (await statusOf(acquire(host, { vm: 'vm1', kind: 'TOKEN_KIND_GUEST' }).done)).code,
      grpc.status.PERMISSION_DENIED,
    );
    const hyper = await grant(host, { vm: 'vm1', kind: 'TOKEN_KIND_HYPERVISOR', host: 'host-a' });
    // The agent may not renew or release the host's HYPERVISOR token either.
    assert.equal((await statusOf(release(vm1, hyper))).code, grpc.status.PERMISSION_DENIED);
    await release(host, hyper);
    const hosts = await listHosts(f.admin);
    assert.deepEqual(
      hosts.hosts.map((h) => h.host),
      ['host-a'],
    );
  });

  it("lets the host role, never the VM's own agent, quiesce a HYPERVISOR token's guest", async () => {
    const hyper = await grant(host, { vm: 'vm1', kind: 'TOKEN_KIND_HYPERVISOR', host: 'host-a' });
    const ref = { tokenId: hyper.tokenId, fencing: hyper.fencing };
    const byAgent = await statusOf(unary(vm1.token.Quiesce.bind(vm1.token), ref));
    assert.equal(byAgent.code, grpc.status.PERMISSION_DENIED);
    await refusalLogged(/method=TokenService\.Quiesce/, /needs the host role; the caller is agent vm1@host-a/);
    assert.equal((await statusOf(unary(vm1.token.Thaw.bind(vm1.token), ref))).code, grpc.status.PERMISSION_DENIED);
    // The host is served: no agent session is up here, so the answer is FAILED, not a refusal.
    const answer = await unary<v1.QuiesceRequest, v1.QuiesceResponse__Output>(host.token.Quiesce.bind(host.token), ref);
    assert.equal(answer.state, 'QUIESCE_STATE_FAILED');
    assert.match(answer.message, /not connected/);
    await release(host, hyper);
  });

  it('refuses a revoked certificate at once: its open session is closed, new calls are refused, also after a restart', async () => {
    const pem = await f.enrollAgent('vm3');
    const vm3 = f.clients(pem);
    const call = vm3.agent.Session();
    const messages: v1.CoordinatorMessage__Output[] = [];
    call.on('data', (m: v1.CoordinatorMessage__Output) => messages.push(m));
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.write({ hello: { vm: 'vm3', host: 'host-a', agentVersion: 'test', hostname: 'vm3', jobs: [] } });
    await waitFor(() => messages.some((m) => m.settings), 5_000, 'the session settings');
    const agents = await unary(f.admin.admin.ListAgents.bind(f.admin.admin), {});
    assert.ok(
      agents.agents.some((a) => a.vm === 'vm3' && a.connected),
      'vm3 connected before the revocation',
    );

    const res = await unary(f.admin.pki.RevokeCertificates.bind(f.admin.pki), {
      serial: pem.serial,
      reason: 'test: compromised',
    });
    assert.deepEqual(
      res.revoked.map((c) => c.serial),
      [pem.serial],
    );
    const err = await ended;
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
    assert.match(err.details, /was revoked/);
    await waitFor(
      async () => {
        const now = await unary(f.admin.admin.ListAgents.bind(f.admin.admin), {});
        return now.agents.some((a) => a.vm === 'vm3' && !a.connected);
      },
      5_000,
      'the coordinator to see vm3 disconnected',
    );

    const again = await statusOf(acquire(vm3, { vm: 'vm3', kind: 'TOKEN_KIND_GUEST' }).done);
    assert.equal(again.code, grpc.status.UNAUTHENTICATED);
    await refusalLogged(
      /method=TokenService\.Acquire/,
      /code=UNAUTHENTICATED/,
      new RegExp(`certificate ${pem.serial} was revoked`),
    );

    await f.restart();
    const vm3After = f.clients(pem);
    assert.equal(
      (await statusOf(acquire(vm3After, { vm: 'vm3', kind: 'TOKEN_KIND_GUEST' }).done)).code,
      grpc.status.UNAUTHENTICATED,
    );
    // Other identities are untouched by the revocation.
    const guest = await grant(
      f.clients({ caFile: path.join(f.pkiDir, 'ca.pem'), certFile: vm1CertFile(f), keyFile: vm1KeyFile(f) }),
      { vm: 'vm1', kind: 'TOKEN_KIND_GUEST' },
    );
    assert.equal(guest.vm, 'vm1');
  });
});

const vm1CertFile = (f: PkiFixture) => path.join(f.dir, 'agent-vm1', 'agent.pem');
const vm1KeyFile = (f: PkiFixture) => path.join(f.dir, 'agent-vm1', 'agent-key.pem');

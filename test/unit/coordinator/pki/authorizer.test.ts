import { strict as assert } from 'node:assert';
import {
  type MessageContext,
  type TokenSubject,
  authorizeCall,
  authorizeMessage,
  isOpenMethod,
} from '../../../../coordinator/pki/authorizer';
import type { Identity } from '../../../../coordinator/pki/identity';

const agent: Identity = { role: 'agent', host: 'h1', vm: 'v1' };
const host: Identity = { role: 'host', host: 'h1' };
const admin: Identity = { role: 'admin', name: 'ops' };
const leases = new Map<string, TokenSubject>([
  ['g1', { kind: 'GUEST', host: 'h1', vm: 'v1' }],
  ['g2', { kind: 'GUEST', host: 'h1', vm: 'v2' }],
  ['x1', { kind: 'HYPERVISOR', host: 'h1', vm: 'v1' }],
  ['x2', { kind: 'HYPERVISOR', host: 'h2', vm: 'v9' }],
]);
const ctx: MessageContext = { defaultHost: 'h1', lease: (id) => leases.get(id) };
const T = '/headroom.v1.TokenService/';
const allowed = (d: { allow: boolean }) => d.allow;

describe('the access rule', () => {
  it('leaves health, reflection and enrolment open, and nothing else', () => {
    assert.ok(isOpenMethod('/grpc.health.v1.Health/Check'));
    assert.ok(isOpenMethod('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo'));
    assert.ok(isOpenMethod('/headroom.v1.PkiService/Enroll'));
    for (const m of [
      '/headroom.v1.PkiService/ListCertificates',
      `${T}Acquire`,
      '/headroom.v1.AdminService/ListHosts',
      '/headroom.v1.AgentService/Session',
    ]) {
      assert.ok(!isOpenMethod(m), m);
    }
  });

  it('gives admin calls to the admin role only', () => {
    for (const m of [
      '/headroom.v1.AdminService/RevokeToken',
      '/headroom.v1.PkiService/RevokeCertificates',
      '/headroom.v1.PkiService/CreateEnrollmentToken',
    ]) {
      assert.ok(allowed(authorizeCall(m, admin)), m);
      const a = authorizeCall(m, agent);
      assert.ok(!a.allow && /needs the admin role; the caller is agent v1@h1/.test(a.reason), m);
      assert.ok(!authorizeCall(m, host).allow, m);
    }
  });

  it('gives the session to agents only, and only as their own VM', () => {
    const s = '/headroom.v1.AgentService/Session';
    assert.ok(!authorizeCall(s, host).allow);
    assert.ok(allowed(authorizeCall(s, agent)));
    const hello = (vm: string, h = '') => ({ hello: { vm, host: h } });
    assert.ok(allowed(authorizeMessage(s, agent, hello('v1'), ctx)), "empty host is the coordinator's own");
    assert.ok(allowed(authorizeMessage(s, agent, hello('v1', 'h1'), ctx)));
    assert.ok(!authorizeMessage(s, agent, hello('v2'), ctx).allow);
    assert.ok(!authorizeMessage(s, agent, hello('v1', 'h2'), ctx).allow);
    assert.ok(allowed(authorizeMessage(s, agent, { load: { cpuPercent: 1 } }, ctx)));
  });

  it('lets an agent acquire GUEST tokens for its own VM on its own host only', () => {
    const acq = (kind: string, vm: string, h = '') =>
      authorizeMessage(`${T}Acquire`, agent, { kind, vm, host: h }, ctx);
    assert.ok(allowed(acq('TOKEN_KIND_GUEST', 'v1')));
    assert.ok(allowed(acq('TOKEN_KIND_GUEST', 'v1', 'h1')));
    assert.match(
      (acq('TOKEN_KIND_GUEST', 'v2') as { reason: string }).reason,
      /may act only for its own VM, not for vm "v2" on host "h1"/,
    );
    assert.ok(!acq('TOKEN_KIND_GUEST', 'v1', 'h2').allow);
    assert.match(
      (acq('TOKEN_KIND_HYPERVISOR', 'v1') as { reason: string }).reason,
      /GUEST tokens only, not HYPERVISOR/,
    );
    assert.ok(!acq('TOKEN_KIND_UNSPECIFIED', 'v1').allow);
    assert.ok(!acq('7', 'v1').allow, 'an unknown enum value');
  });

  it('lets the host role acquire HYPERVISOR tokens on its own host only, for any VM there', () => {
    const acq = (kind: string, vm: string, h = '') => authorizeMessage(`${T}Acquire`, host, { kind, vm, host: h }, ctx);
    assert.ok(allowed(acq('TOKEN_KIND_HYPERVISOR', 'v1')));
    assert.ok(allowed(acq('TOKEN_KIND_HYPERVISOR', 'v7', 'h1')));
    assert.ok(!acq('TOKEN_KIND_HYPERVISOR', 'v1', 'h2').allow);
    assert.match((acq('TOKEN_KIND_GUEST', 'v1') as { reason: string }).reason, /HYPERVISOR tokens only, not GUEST/);
  });

  it('checks renew and release against the lease they name', () => {
    for (const method of ['Renew', 'Release']) {
      const m = (who: Identity, tokenId: string) =>
        authorizeMessage(`${T}${method}`, who, { tokenId, fencing: 1 }, ctx);
      assert.ok(allowed(m(agent, 'g1')));
      assert.ok(!m(agent, 'g2').allow, "another VM's token");
      assert.ok(!m(agent, 'x1').allow, 'a HYPERVISOR token of its VM');
      assert.ok(allowed(m(host, 'x1')));
      assert.ok(!m(host, 'x2').allow, "another host's token");
      assert.ok(!m(host, 'g1').allow);
      assert.ok(allowed(m(admin, 'g2')));
      // Not active: the service answers NOT_FOUND as it would for anyone.
      assert.ok(allowed(m(agent, 'gone')));
    }
  });

  it('compares VMs by identity: an agent certified as web1 holds the token keyed by web1’s UUID', () => {
    const U = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
    const placed: MessageContext = {
      defaultHost: 'h1',
      lease: () => ({ kind: 'GUEST', host: 'h1', vm: U }),
      vmIdentity: (vm) => (vm === 'web1' ? U : vm),
    };
    const web1: Identity = { role: 'agent', host: 'h1', vm: 'web1' };
    assert.ok(allowed(authorizeMessage(`${T}Renew`, web1, { tokenId: 't' }, placed)));
    assert.ok(allowed(authorizeMessage(`${T}Acquire`, web1, { kind: 'TOKEN_KIND_GUEST', vm: U }, placed)));
    assert.ok(!allowed(authorizeMessage(`${T}Renew`, { ...web1, vm: 'db1' }, { tokenId: 't' }, placed)));
  });

  it("gives Quiesce and Thaw to the host role of the token's host (and admin), never to an agent", () => {
    for (const method of ['Quiesce', 'Thaw']) {
      const path = `${T}${method}`;
      const a = authorizeCall(path, agent);
      assert.ok(!a.allow && /needs the host role; the caller is agent v1@h1/.test(a.reason), method);
      assert.ok(allowed(authorizeCall(path, host)));
      assert.ok(allowed(authorizeCall(path, admin)));
      const m = (who: Identity, tokenId: string) => authorizeMessage(path, who, { tokenId, fencing: 1 }, ctx);
      assert.ok(allowed(m(host, 'x1')));
      assert.ok(!m(host, 'x2').allow, "another host's token");
      assert.ok(!m(host, 'g1').allow, 'a GUEST token');
      assert.ok(allowed(m(admin, 'x2')));
    }
  });

  it("lets the host role read its own host's policy, not another host's, and change none", () => {
    const get = '/headroom.v1.AdminService/GetPolicy';
    const set = '/headroom.v1.AdminService/SetPolicy';
    assert.ok(allowed(authorizeCall(get, host)));
    assert.ok(allowed(authorizeMessage(get, host, { host: 'h1' }, ctx)));
    assert.ok(allowed(authorizeMessage(get, host, { host: '' }, ctx)), "empty host is the coordinator's own");
    const other = authorizeMessage(get, host, { host: 'h2' }, ctx);
    assert.ok(!other.allow && /may read AdminService.GetPolicy of its own host only, not of "h2"/.test(other.reason));
    const a = authorizeCall(get, agent);
    assert.ok(!a.allow && /needs the host role \(its own host\) or the admin role/.test(a.reason));
    assert.ok(!authorizeMessage(get, agent, { host: 'h1' }, ctx).allow);
    const s = authorizeCall(set, host);
    assert.ok(!s.allow && /SetPolicy needs the admin role; the caller is host h1/.test(s.reason));
    assert.ok(allowed(authorizeMessage(get, admin, { host: 'h2' }, ctx)));
  });

  it("lets the host role read and watch its own host's history (host-backup hears of a revoke there), no other", () => {
    for (const method of ['ListHistory', 'WatchHistory']) {
      const path = `/headroom.v1.AdminService/${method}`;
      assert.ok(allowed(authorizeCall(path, host)));
      assert.ok(allowed(authorizeMessage(path, host, { host: 'h1', vm: 'vm1' }, ctx)));
      const other = authorizeMessage(path, host, { host: 'h2' }, ctx);
      assert.ok(!other.allow && new RegExp(`${method} of its own host only, not of "h2"`).test(other.reason));
      const every = authorizeMessage(path, host, { host: '' }, ctx);
      assert.ok(!every.allow && /not of every host: give host "h1"/.test(every.reason), 'no host is every host');
      assert.ok(!authorizeCall(path, agent).allow, 'an agent reads no history');
    }
  });

  it('lets the admin role do everything', () => {
    assert.ok(
      allowed(authorizeMessage(`${T}Acquire`, admin, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'any', host: 'h9' }, ctx)),
    );
    assert.ok(allowed(authorizeMessage('/headroom.v1.AgentService/Session', admin, { hello: { vm: 'v5' } }, ctx)));
  });

  describe('RenewCertificate', () => {
    const RENEW = '/headroom.v1.PkiService/RenewCertificate';
    const other: Identity = { role: 'agent', host: 'h1', vm: 'v2' };
    const owners = new Map<string, Identity>([
      ['a1', agent],
      ['a2', other],
      ['h1', host],
      ['ad', admin],
    ]);
    const renewCtx: MessageContext = { ...ctx, certificateOwner: (s) => owners.get(s) };

    it('is open to every role at the call, and needs a certificate (it is not an open method)', () => {
      assert.ok(!isOpenMethod(RENEW));
      for (const id of [agent, host, admin]) assert.ok(allowed(authorizeCall(RENEW, id)));
    });

    it('lets each identity renew its own certificates only, an admin included', () => {
      assert.ok(allowed(authorizeMessage(RENEW, agent, { serial: 'a1' }, renewCtx)));
      assert.ok(allowed(authorizeMessage(RENEW, host, { serial: 'h1' }, renewCtx)));
      assert.ok(allowed(authorizeMessage(RENEW, admin, { serial: 'ad' }, renewCtx)));
      const d = authorizeMessage(RENEW, agent, { serial: 'a2' }, renewCtx);
      assert.deepEqual(d, {
        allow: false,
        reason: 'agent v1@h1 may renew its own certificates only, not a certificate of agent v2@h1',
      });
      assert.ok(!allowed(authorizeMessage(RENEW, admin, { serial: 'a1' }, renewCtx)));
      assert.ok(!allowed(authorizeMessage(RENEW, host, { serial: 'a1' }, renewCtx)));
    });

    it("tells identities apart by their URI, not their description ('@' in names)", () => {
      const a: Identity = { role: 'agent', host: 'c', vm: 'a@b' };
      const b: Identity = { role: 'agent', host: 'b@c', vm: 'a' };
      const c2: MessageContext = { ...ctx, certificateOwner: () => b };
      assert.ok(!allowed(authorizeMessage(RENEW, a, { serial: 'x' }, c2)));
    });

    it('passes an unknown serial on to the service (NOT_FOUND there, as for anyone)', () => {
      assert.ok(allowed(authorizeMessage(RENEW, agent, { serial: 'nope' }, renewCtx)));
    });
  });
});

/**
 * A cluster secured as one that spans machines (issue 17): a 3-member etcd serving clients over TLS with
 * client certificates, and 3 members sharing one CA (pki init once, the directory copied, each member's own
 * member.pem from `pki reissue-server --member`). Callers reach the leader through a follower's mutual-TLS
 * front door and are authorized there as themselves; callers without a certificate, revoked certificates
 * and non-members naming another caller are refused.
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { enroll } from '../../agent/enroll';
import { type Clients, clientCredentials, connect, tlsCredentials, unary } from '../../common/client/connection';
import { createLogger } from '../../common/util/log';
import { initPki } from '../../coordinator/pki/init';
import { reissueServerCertificate } from '../../coordinator/pki/server-certificate';
import { pkiFiles } from '../../coordinator/pki/state-dir';
import { FORWARDED_FOR, FORWARDED_SERIAL } from '../../coordinator/rpc/auth-interceptor';
import { type ClusterMembers, type Member, startMembers } from '../helpers/cluster-members';
import { tempDir } from '../helpers/coordinator-process';
import { type EtcdCluster, startEtcdCluster } from '../helpers/etcd-cluster';
import { grant, release, renew, statusOf } from '../helpers/token-client';
import { waitFor } from '../helpers/wait';

const silent = createLogger({ level: 'silent' });

interface Pem {
  caFile: string;
  certFile?: string;
  keyFile?: string;
}

describe('cluster across machines: mutual TLS between members, the callers identities, TLS to etcd', function () {
  this.timeout(5 * 60_000);
  let etcd: EtcdCluster | undefined;
  let members: ClusterMembers | undefined;
  let dir: string;
  const opened: Clients[] = [];

  /** Clients of `address` presenting `pem` (none: no client certificate); through that member unless `direct`. */
  const clients = (address: string, pem: Pem, direct = false): Clients => {
    const read = (f?: string) => (f ? fs.readFileSync(f) : undefined);
    const c = connect(
      address,
      tlsCredentials(address, { ca: read(pem.caFile), cert: read(pem.certFile), key: read(pem.keyFile) }),
      {},
      { viaMembers: !direct },
    );
    opened.push(c);
    return c;
  };
  const memberDir = (m: Member) => path.join(dir, `pki-${m.index}`);
  const admin = (m: Member): Pem => {
    const f = pkiFiles(memberDir(m));
    return { caFile: f.caCert, certFile: f.adminCert, keyFile: f.adminKey };
  };
  const listHosts = (c: Clients) => unary(c.admin.ListHosts.bind(c.admin), {});
  /** A follower whose front door knows the leader (a member just started or elected learns it by a watch). */
  const follower = async (not?: Member) => {
    const leader = await members!.waitLeader();
    const m = members!.members.find((x) => x !== leader && x !== not && x.running)!;
    const probe = clients(m.address, admin(m));
    await waitFor(
      () =>
        listHosts(probe).then(
          () => true,
          (e: grpc.ServiceError) => e.code !== grpc.status.UNAVAILABLE,
        ),
      60_000,
      `member ${m.host} forwarding to the leader`,
    );
    return m;
  };
  let agent: Pem & { serial: string };

  before(async () => {
    dir = tempDir('headroom-clustertls-');
    etcd = await startEtcdCluster({ tls: true });
    // The documented set-up: one CA, made once and copied to every member; each member's own member.pem.
    const first = path.join(dir, 'pki-0');
    await initPki({
      dir: first,
      host: 'member-h0',
      serverNames: ['localhost', '127.0.0.1'],
      admin: 'ops',
      log: silent,
    });
    for (const i of [1, 2]) {
      fs.cpSync(first, path.join(dir, `pki-${i}`), { recursive: true });
      await reissueServerCertificate({ dir: path.join(dir, `pki-${i}`), member: `member-h${i}` });
    }
    members = await startMembers({
      endpoints: etcd.endpoints,
      etcdTls: etcd.tls,
      electionTtl: '2s',
      args: ['--lease-ttl', '5m'],
      memberArgs: (m) => ['--pki-dir', memberDir(m)],
    });
    await members.waitLeader();
  });

  after(async () => {
    for (const c of opened) c.close();
    await members?.stopAll();
    await etcd?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves an admin through a follower, and enrols an agent there', async () => {
    const f = await follower();
    const hosts = await listHosts(clients(f.address, admin(f)));
    assert.ok(Array.isArray(hosts.hosts));
    const { token } = await unary(
      clients(f.address, admin(f)).pki.CreateEnrollmentToken.bind(clients(f.address, admin(f)).pki),
      {
        identity: { role: 'ROLE_AGENT', host: 'member-h1', vm: 'vm1' },
      },
    );
    const r = await enroll({ token, coordinator: f.address, dir: path.join(dir, 'agent-vm1'), log: silent });
    agent = {
      ...r.files,
      serial: new X509Certificate(fs.readFileSync(r.files.certFile)).serialNumber.toLowerCase(),
    };
  });

  it("tells an admin the cluster's members, its leader and each etcd endpoint's health, etcd's TLS included", async () => {
    const f = await follower();
    const a = clients(f.address, admin(f));
    const info = await unary(a.admin.GetCluster.bind(a.admin), {});
    assert.equal(info.clustered, true);
    assert.equal(info.members.length, 3);
    assert.equal(info.members.filter((m) => m.leader).length, 1);
    assert.deepEqual(
      info.etcd.map((e) => [e.healthy, e.error]),
      info.etcd.map(() => [true, '']),
    );
    assert.equal(info.etcd.filter((e) => e.raftLeader).length, 1, 'one raft leader among the endpoints');
    assert.ok(info.etcd.every((e) => e.version !== '' && Number(e.dbSizeBytes) > 0));
  });

  it("authorizes a forwarded agent as itself at the leader: its own VM's token, not another's, no admin call", async () => {
    const f = await follower();
    const vm1 = clients(f.address, agent);
    const token = await grant(vm1, { host: 'member-h1', vm: 'vm1', kind: 'TOKEN_KIND_GUEST' });
    assert.ok(token.fencing > 0);
    const other = await statusOf(grant(vm1, { host: 'member-h1', vm: 'vm2', kind: 'TOKEN_KIND_GUEST' }));
    assert.equal(other.code, grpc.status.PERMISSION_DENIED);
    assert.match(other.details, /agent vm1@member-h1 may act only for its own VM/);
    const adminCall = await statusOf(listHosts(vm1));
    assert.equal(adminCall.code, grpc.status.PERMISSION_DENIED);
    await renew(vm1, token);
    await release(vm1, token);
  });

  it("sends an agent's calls straight to the leader once a follower named it, checking the leader's certificate, authorizing it as itself", async () => {
    const f = await follower();
    const leader = await members!.waitLeader();
    const vm1 = clients(f.address, agent, true);
    const token = await grant(vm1, { host: 'member-h1', vm: 'vm1', kind: 'TOKEN_KIND_GUEST' });
    await waitFor(() => vm1.direct() === leader.peer, 60_000, "the agent's calls to go straight to the leader");
    // At the leader's own address, with no member in between: still its own VM only, and no admin call.
    const other = await statusOf(grant(vm1, { host: 'member-h1', vm: 'vm2', kind: 'TOKEN_KIND_GUEST' }));
    assert.equal(other.code, grpc.status.PERMISSION_DENIED);
    assert.match(other.details, /agent vm1@member-h1 may act only for its own VM/);
    assert.equal((await statusOf(listHosts(vm1))).code, grpc.status.PERMISSION_DENIED);
    await renew(vm1, token);
    await release(vm1, token);
    assert.equal(vm1.direct(), leader.peer);
  });

  it("serves a client given every member's address, over TLS, checking each member's certificate by its IP", async () => {
    const f = pkiFiles(memberDir(members!.members[0]));
    const list = members!.addressList;
    const c = connect(
      list,
      clientCredentials(list, { tls: { caFile: f.caCert, certFile: f.adminCert, keyFile: f.adminKey } }, silent),
    );
    opened.push(c);
    assert.ok(Array.isArray((await listHosts(c)).hosts));
  });

  it('refuses a caller without a certificate at the front door', async () => {
    const f = await follower();
    const s = await statusOf(listHosts(clients(f.address, { caFile: pkiFiles(memberDir(f)).caCert })));
    assert.equal(s.code, grpc.status.UNAUTHENTICATED);
  });

  it('refuses a non-member that names another caller, at the front door (stripped) and at the leader', async () => {
    const f = await follower();
    const leader = await members!.waitLeader();
    const forged = new grpc.Metadata();
    forged.set(FORWARDED_FOR, 'headroom://admin/ops');
    forged.set(FORWARDED_SERIAL, agent.serial);
    const call = (c: Clients) =>
      new Promise((resolve, reject) =>
        c.admin.ListHosts({}, forged, { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r))),
      );
    // Through the front door the caller is who its certificate says, whatever it claims.
    const stripped = await statusOf(call(clients(f.address, agent)));
    assert.equal(stripped.code, grpc.status.PERMISSION_DENIED);
    assert.match(stripped.details, /agent vm1@member-h1/);
    // Straight to the leader's peer address: only a member may name a caller.
    const direct = await statusOf(call(clients(leader.peer, agent)));
    assert.equal(direct.code, grpc.status.UNAUTHENTICATED);
    assert.match(direct.details, /accepted from cluster members only/);
  });

  it('keeps an agent renewing its token through a follower across a leader kill, and enrols with a token made before', async () => {
    const leader = await members!.waitLeader();
    const f = await follower();
    const vm1 = clients(f.address, agent);
    const hypervisor = await statusOf(grant(vm1, { host: 'member-h1', vm: 'vm1', kind: 'TOKEN_KIND_HYPERVISOR' }));
    assert.equal(hypervisor.code, grpc.status.PERMISSION_DENIED, 'an agent takes GUEST tokens only');
    const held = await grant(vm1, { host: 'member-h1', vm: 'vm1' });
    const a = clients(f.address, admin(f));
    const { token: vm3Token } = await unary(a.pki.CreateEnrollmentToken.bind(a.pki), {
      identity: { role: 'ROLE_AGENT', host: 'member-h2', vm: 'vm3' },
    });
    await members!.kill(leader);
    const next = await members!.waitLeader(60_000, leader);
    const through = next === f ? await follower(leader) : f;
    const holder = clients(through.address, agent);
    let renewed: Awaited<ReturnType<typeof renew>> | undefined;
    await waitFor(
      async () => {
        renewed = await renew(holder, held).catch(() => undefined);
        return renewed !== undefined;
      },
      60_000,
      'a renewal through a follower after the leader was killed',
    );
    // Renewed: the same token, under the same fencing number, by the new leader.
    assert.ok(renewed!.expiresUnixMs > 0);
    await release(holder, held);
    // A token made under the old leader enrols under the new one (the PKI records are shared through etcd).
    const vm3 = await enroll({
      token: vm3Token,
      coordinator: through.address,
      dir: path.join(dir, 'vm3'),
      log: silent,
    });
    await grant(clients(through.address, vm3.files), { host: 'member-h2', vm: 'vm3' });
    await members!.restart(leader);
  });

  it('refuses a revoked certificate at every member', async () => {
    const f = await follower();
    const a = clients(f.address, admin(f));
    const { revoked } = await unary(a.pki.RevokeCertificates.bind(a.pki), {
      serial: agent.serial,
      reason: 'test: lost VM',
    });
    assert.equal(revoked.length, 1);
    for (const m of members!.members) {
      const c = clients(m.address, agent);
      await waitFor(
        async () => (await statusOf(grant(c, { host: 'member-h1', vm: 'vm1' }))).code === grpc.status.UNAUTHENTICATED,
        30_000,
        `member ${m.host} refusing the revoked certificate`,
      );
    }
  });
});

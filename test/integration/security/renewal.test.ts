/**
 * The PKI over the years, with real certificates, a real coordinator, real headroomctl and agent processes:
 * the server certificate reissued for a new address and reloaded on SIGHUP without anyone enrolling again
 * (and the open connections kept), the expiry warning of a short-lived server certificate, `pki list`
 * with the server certificate and human durations, an agent renewing its certificate over mutual TLS and
 * presenting the new one from its next connection, and the renewals that are refused.
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, clientCredentials, connect, unary } from '../../../common/client/connection';
import { createCsrPem, generateKeyPair } from '../../../common/pki/x509';
import { CertificateAuthority } from '../../../coordinator/pki/certificate-authority';
import { PkiStore } from '../../../coordinator/pki/pki-store';
import { pkiFiles } from '../../../coordinator/pki/state-dir';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { type AgentProcess, startAgent } from '../agent/processes';
import { killAll, runCtl } from '../ctl/ctl-process';
import { type Pem, adminPem, hostFlags, hostPem, silent } from './pki-fixture';
import { enroll } from '../../../agent/enroll';

const DAY_MS = 86_400_000;

const serialOf = (file: string) => new X509Certificate(fs.readFileSync(file)).serialNumber.toLowerCase();
const notAfterOf = (file: string) => Date.parse(new X509Certificate(fs.readFileSync(file)).validTo);

describe('certificates over the years: reissue, renewal, expiry warnings (real processes)', function () {
  this.timeout(120_000);
  let dir: string;
  let pkiDir: string;
  let dbPath: string;
  let coordinator: RunningCoordinator;
  /** localhost:PORT: the only name the first server certificate carries. */
  let byName: string;
  /** 127.0.0.1:PORT: an address it does not carry until it is reissued. */
  let byIp: string;
  const opened: Clients[] = [];
  let agent: AgentProcess | undefined;

  const clients = (address: string, pem: Partial<Pem> & { caFile: string }) => {
    const c = connect(address, clientCredentials(address, { tls: pem }, silent));
    opened.push(c);
    return c;
  };
  const renew = (c: Clients, serial: string, csrPem: string) =>
    unary(c.pki.RenewCertificate.bind(c.pki), { serial, csrPem });
  const csr = async () => createCsrPem(await generateKeyPair(), 'test');
  const refusedWith = (code: grpc.status, message: RegExp) => (e: unknown) => {
    const err = e as grpc.ServiceError;
    assert.equal(err.code, code, `${grpc.status[err.code]}: ${err.details}`);
    assert.match(err.details, message);
    return true;
  };
  const ctlAsAdmin = (address: string, ...args: string[]) =>
    runCtl(['--coordinator', address, '--pki-dir', pkiDir, ...args]);

  async function enrollAgent(vm: string) {
    const admin = clients(byName, adminPem(pkiDir));
    const { token } = await unary(admin.pki.CreateEnrollmentToken.bind(admin.pki), {
      identity: { role: 'ROLE_AGENT', host: 'host-a', vm },
    });
    return (await enroll({ token, coordinator: byName, dir: path.join(dir, `agent-${vm}`), log: silent })).files;
  }

  before(async () => {
    dir = tempDir('headroom-renewal-');
    pkiDir = path.join(dir, 'pki');
    dbPath = path.join(dir, 'headroom.db');
    const init = await runCtl(['pki', 'init', '--dir', pkiDir, '--host', 'host-a', '--names', 'localhost']);
    assert.equal(init.code, 0, init.stderr);
    coordinator = await startCoordinator({ dbPath, args: ['--pki-dir', pkiDir] });
    byName = coordinator.address.replace('127.0.0.1', 'localhost');
    byIp = coordinator.address;
  });

  after(async () => {
    await agent?.stop();
    await killAll();
    for (const c of opened) c.close();
    await coordinator?.kill();
  });

  it('reissues the server certificate for a new IP: clients reach it there without enrolling again, open calls go on', async () => {
    const before = await ctlAsAdmin(byIp, 'pki', 'list');
    assert.equal(before.code, 1);
    assert.match(before.stderr, /the coordinator's certificate does not name 127\.0\.0\.1/);

    // A stream open before the reload: it must outlive it.
    const admin = clients(byName, adminPem(pkiDir));
    const watch = admin.admin.WatchHistory({});
    let watchEnded: string | undefined;
    watch.on('error', (e: grpc.ServiceError) => (watchEnded = e.details));
    watch.on('end', () => (watchEnded = 'end'));
    await unary(admin.admin.ListHosts.bind(admin.admin), {});
    const oldServerSerial = serialOf(pkiFiles(pkiDir).serverCert);
    const keyBefore = fs.readFileSync(pkiFiles(pkiDir).serverKey, 'utf8');

    const reissue = await runCtl([
      'pki',
      'reissue-server',
      '--dir',
      pkiDir,
      '--names',
      'localhost,127.0.0.1',
      '--valid',
      '10d',
    ]);
    assert.equal(reissue.code, 0, reissue.stderr);
    assert.match(
      reissue.stdout,
      new RegExp(`server\\.pem: serial [0-9a-f]+ \\(was ${oldServerSerial}\\) for localhost, 127\\.0\\.0\\.1`),
    );
    assert.match(reissue.stdout, /expires in 9 days \(.*\); same key\n/);
    assert.equal(fs.readFileSync(pkiFiles(pkiDir).serverKey, 'utf8'), keyBefore, 'the key is kept');

    coordinator.process.kill('SIGHUP');
    await waitFor(() => /server certificate reloaded/.test(coordinator.log()), 15_000, 'the reload');
    const after = await ctlAsAdmin(byIp, 'pki', 'list');
    assert.equal(after.code, 0, after.stderr);
    // An agent enrolled before the reissue reaches it by IP with the certificate it has.
    const files = await enrollAgent('vm1');
    const agentByIp = clients(byIp, files);
    await assert.rejects(
      renew(agentByIp, 'ffff', await csr()),
      refusedWith(grpc.status.NOT_FOUND, /no certificate with serial ffff/),
    );

    await unary(admin.admin.ListHosts.bind(admin.admin), {});
    assert.equal(watchEnded, undefined, 'the stream opened before the reload is still open');
    watch.cancel();
  });

  it('warns of the short-lived server certificate, naming the file and the command that fixes it', () => {
    assert.match(
      coordinator.log(),
      /WARN +the coordinator's server certificate expires in 9 days file=\S+\/pki\/server\.pem notAfter=\S+ fix="headroomctl pki reissue-server --dir \S+\/pki, then kill -HUP the coordinator/,
    );
  });

  it('pki list shows the server certificate, the CA and human durations', async () => {
    const r = await ctlAsAdmin(byName, 'pki', 'list');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^[0-9a-f]+ +server +localhost,127\.0\.0\.1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +expires in 9 days$/m,
    );
    assert.match(r.stdout, /^- +ca +- +\d{4}-\d\d-\d\d \S+ +expires in 36\d\d days$/m);
    assert.match(r.stdout, /^[0-9a-f]+ +admin +admin +\d{4}-\d\d-\d\d \S+ +expires in 364 days$/m);
    const json = JSON.parse((await ctlAsAdmin(byName, 'pki', 'list', '--json')).stdout);
    assert.deepEqual(json.server.ipAddresses, ['127.0.0.1']);
    assert.equal(json.server.notAfter, new Date(Number(json.server.notAfterUnixMs)).toISOString());
    assert.equal(json.server.file, pkiFiles(pkiDir).serverCert);
  });

  it('an agent past its renewal point renews over mutual TLS, and its next connection presents the new certificate', async () => {
    // A certificate issued 300 days ago for a year: past 2/3 of its lifetime.
    const identity = { role: 'agent' as const, host: 'host-a', vm: 'vm2' };
    const ca = await CertificateAuthority.load(pkiDir, () => Date.now() - 300 * DAY_MS);
    const old = await ca.issueClientWithKey(identity);
    const store = new PkiStore(pkiFiles(pkiDir).database);
    store.addCertificate({ serial: old.serial, identity, notBefore: old.notBefore, notAfter: old.notAfter }, null);
    store.close();
    const agentDir = path.join(dir, 'agent-vm2');
    fs.mkdirSync(agentDir, { mode: 0o700 });
    const files = {
      caFile: path.join(agentDir, 'ca.pem'),
      certFile: path.join(agentDir, 'agent.pem'),
      keyFile: path.join(agentDir, 'agent-key.pem'),
    };
    fs.copyFileSync(pkiFiles(pkiDir).caCert, files.caFile);
    fs.writeFileSync(files.certFile, old.pem);
    fs.writeFileSync(files.keyFile, old.keyPem, { mode: 0o600 });
    const config = path.join(agentDir, 'agent.yaml');
    fs.writeFileSync(
      config,
      [
        `coordinator: ${byName}`,
        'vm: vm2',
        'host: host-a',
        'tls:',
        ...Object.entries(files).map(([k, v]) => `  ${k}: ${v}`),
      ].join('\n') + '\n',
    );
    const admin = clients(byName, adminPem(pkiDir));
    const vm2 = async () =>
      (await unary(admin.admin.ListAgents.bind(admin.admin), {})).agents.find((a) => a.vm === 'vm2');

    agent = startAgent(['run', '--config', config]);
    await waitFor(() => serialOf(files.certFile) !== old.serial, 30_000, 'the agent to renew its certificate');
    const renewed = serialOf(files.certFile);
    assert.ok(notAfterOf(files.certFile) > old.notAfter + 200 * DAY_MS, 'a new year of validity');
    assert.equal(fs.statSync(files.keyFile).mode & 0o777, 0o600);
    assert.match(
      coordinator.log(),
      new RegExp(`INFO +certificate renewed identity="agent vm2@host-a" serial=${renewed} previous=${old.serial}`),
    );
    await waitFor(() => /certificate renewed: the next connection presents it/.test(agent!.stderr()), 15_000);
    await waitFor(async () => (await vm2())?.connected === true, 30_000, 'the session of vm2');

    // The next connection: the coordinator goes away, the old certificate is revoked while it is down, and
    // it comes back on the same address. Only the renewed certificate can open the session again.
    await coordinator.kill();
    const offline = new PkiStore(pkiFiles(pkiDir).database);
    offline.revoke([old.serial], 'test: renewed', Date.now());
    offline.close();
    coordinator = await startCoordinator({ dbPath, listen: byIp, args: ['--pki-dir', pkiDir] });
    await waitFor(async () => (await vm2())?.connected === true, 60_000, 'vm2 to reconnect with its new certificate');
    assert.doesNotMatch(coordinator.log(), /call refused/);
    // And the restarted coordinator warned at start too.
    assert.match(coordinator.log(), /WARN +the coordinator's server certificate expires in 9 days/);
  });

  it("refuses a renewal of another identity's certificate, of a revoked one, and without a client certificate", async () => {
    const vm1 = await enrollAgent('vm1b');
    const vm2Serial = serialOf(path.join(dir, 'agent-vm2', 'agent.pem'));
    const asVm1 = clients(byName, vm1);
    await assert.rejects(
      renew(asVm1, vm2Serial, await csr()),
      refusedWith(
        grpc.status.PERMISSION_DENIED,
        /agent vm1b@host-a may renew its own certificates only, not a certificate of agent vm2@host-a/,
      ),
    );
    const anonymous = clients(byName, { caFile: pkiFiles(pkiDir).caCert });
    await assert.rejects(
      renew(anonymous, vm2Serial, await csr()),
      refusedWith(grpc.status.UNAUTHENTICATED, /a client certificate issued by this coordinator's CA is required/),
    );
    // vm1b enrols a second time; its first certificate is revoked, and renewing it is refused.
    const first = serialOf(vm1.certFile);
    const again = await enrollAgent('vm1b');
    const revoke = await ctlAsAdmin(byName, 'pki', 'revoke', '--serial', first);
    assert.equal(revoke.code, 0, revoke.stderr);
    await assert.rejects(
      renew(clients(byName, again), first, await csr()),
      refusedWith(grpc.status.FAILED_PRECONDITION, new RegExp(`certificate ${first} is revoked and cannot be renewed`)),
    );
  });

  it("pki renew renews headroomctl's own host certificate in place", async () => {
    const host = hostPem(pkiDir);
    const before = serialOf(host.certFile!);
    const renewAsHost = () => runCtl(['--coordinator', byName, ...hostFlags(pkiDir), 'pki', 'renew']);
    const r = await renewAsHost();
    assert.equal(r.code, 0, r.stderr);
    const after = serialOf(host.certFile!);
    assert.notEqual(after, before);
    assert.match(r.stdout, new RegExp(`host\\.pem: serial ${after} \\(was ${before}\\)`));
    assert.match(r.stdout, /^expires in 364 days/m);
    assert.equal(fs.statSync(host.keyFile!).mode & 0o777, 0o600);
    // The renewed pair is presented, and works: renewing again succeeds and names it as the old one.
    const again = await renewAsHost();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`\\(was ${after}\\)`));
  });
});

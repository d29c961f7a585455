import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { killAll, runCtl } from './ctl-process';

// Sources, not dist: tsc does not copy the PEM files. Made by fixtures/gen.sh.
const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'test', 'integration', 'ctl', 'fixtures');
const pem = (name: string) => path.join(FIXTURES, name);

describe('headroomctl over mutual TLS', function () {
  this.timeout(30_000);
  let coordinator: RunningCoordinator;
  let address: string;

  before(async () => {
    coordinator = await startCoordinator({
      args: ['--tls-cert', pem('server.pem'), '--tls-key', pem('server.key'), '--tls-client-ca', pem('ca.pem')],
    });
    // The server certificate names localhost and 127.0.0.1; most tests call it by name, one by address.
    address = coordinator.address.replace('127.0.0.1', 'localhost');
  });

  after(async () => {
    await killAll();
    await coordinator?.kill();
  });

  it('talks to the coordinator with --tls-ca, --tls-cert and --tls-key, without the plaintext warning', async () => {
    const r = await runCtl([
      '--coordinator',
      address,
      '--tls-ca',
      pem('ca.pem'),
      '--tls-cert',
      pem('client.pem'),
      '--tls-key',
      pem('client.key'),
      'status',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).hosts[0].host, 'host-a');
    assert.equal(r.stderr, '');
  });

  it('fails with exit 1 when it offers no client certificate, naming the flags that give one', async () => {
    const r = await runCtl(['--coordinator', address, '--tls-ca', pem('ca.pem'), 'status']);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      "headroomctl: ListHosts: UNAUTHENTICATED: a client certificate issued by this coordinator's CA is required; give a client certificate and key issued by the coordinator's CA: --tls-cert FILE --tls-key FILE, or --pki-dir DIR for the admin identity\n",
    );
  });

  it('calls 127.0.0.1 by its IP SAN without sending it as the TLS server name: no DEP0123, no warning', async () => {
    const r = await runCtl([
      '--coordinator',
      coordinator.address,
      '--tls-ca',
      pem('ca.pem'),
      '--tls-cert',
      pem('client.pem'),
      '--tls-key',
      pem('client.key'),
      'status',
    ]);
    assert.match(coordinator.address, /^127\.0\.0\.1:/);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /DEP0123|Warning/i);
    assert.equal(r.stderr, '');
  });

  it('says that a coordinator serving TLS closed a plaintext connection, and which flags to pass', async () => {
    const r = await runCtl(['--coordinator', coordinator.address, 'status']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /\nheadroomctl: ListHosts: UNAVAILABLE: the connection to 127\.0\.0\.1:\d+ was plaintext \(no TLS files given\) and the coordinator closed it: it serves TLS \(Failed to connect\); give the coordinator's CA \(--tls-ca FILE, or --pki-dir DIR\) and a client certificate \(--tls-cert FILE --tls-key FILE, or --pki-dir DIR for the admin identity\)\n$/,
    );
    assert.doesNotMatch(r.stderr, /unreachable/);
  });

  it("says that another CA's certificate does not make the coordinator trusted, and names --tls-ca", async () => {
    const other = path.join(tempDir('headroom-other-ca-'), 'pki');
    const init = await runCtl(['pki', 'init', '--dir', other, '--host', 'host-a', '--names', 'localhost']);
    assert.equal(init.code, 0, init.stderr);
    const r = await runCtl(['--coordinator', address, '--pki-dir', other, 'status']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^headroomctl: ListHosts: UNAVAILABLE: the coordinator's certificate at localhost:\d+ is not trusted: it is not signed by the CA given, or not valid now \(self-signed certificate in certificate chain\); give the CA that signed the coordinator's certificate \(its ca\.pem\): --tls-ca FILE, or --pki-dir DIR\n$/,
    );
  });

  it('says that the coordinator certificate does not carry the name connected to, and names --coordinator', async () => {
    // A coordinator whose certificate names only coordinator.example, called as localhost.
    const pki = path.join(tempDir('headroom-named-'), 'pki');
    const init = await runCtl(['pki', 'init', '--dir', pki, '--host', 'host-a', '--names', 'coordinator.example']);
    assert.equal(init.code, 0, init.stderr);
    const named = await startCoordinator({ args: ['--pki-dir', pki] });
    try {
      const r = await runCtl([
        '--coordinator',
        named.address.replace('127.0.0.1', 'localhost'),
        '--pki-dir',
        pki,
        'status',
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^headroomctl: ListHosts: UNAVAILABLE: the coordinator's certificate does not name localhost:\d+ \(ERR_TLS_CERT_ALTNAME_INVALID: Hostname\/IP does not match certificate's altnames: Host: localhost\. is not in the cert's altnames: DNS:coordinator\.example\); connect by a name or address the certificate carries \(--coordinator\), or reissue the coordinator's certificate with this one\n$/,
      );
    } finally {
      await named.kill();
    }
  });

  it('says which TLS file it cannot read, as a usage error', async () => {
    const r = await runCtl(['--coordinator', address, '--tls-ca', pem('missing.pem'), 'status']);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /^headroomctl: --tls-ca \S*missing\.pem: no such file; see 'headroomctl status --help'\n$/);
  });
});

import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
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
    // The server certificate names localhost; 127.0.0.1 works too but makes Node warn about IP server names.
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

  it('fails with exit 1 when it offers no client certificate', async () => {
    const r = await runCtl(['--coordinator', address, '--tls-ca', pem('ca.pem'), 'status']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^headroomctl: ListHosts: UNAUTHENTICATED: a client certificate issued by this coordinator's CA is required\n$/,
    );
  });

  it('says which TLS file it cannot read, as a usage error', async () => {
    const r = await runCtl(['--coordinator', address, '--tls-ca', pem('missing.pem'), 'status']);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /^headroomctl: --tls-ca \S*missing\.pem: no such file; see 'headroomctl status --help'\n$/);
  });
});

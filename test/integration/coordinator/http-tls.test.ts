/**
 * The HTTP listener off loopback: HTTPS with the coordinator's server certificate, and only for callers
 * with a client certificate of its CA. The address is the root side of a veth pair into a network
 * namespace the test makes (test/helpers/netns.ts), so nothing listens on a real network.
 * Needs root: without it the test says so and skips, as the other namespace tests do.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { CTL_MAIN, type RunningCoordinator } from '../../helpers/coordinator-process';
import { isRoot } from '../../helpers/require-tool';
import type { Partition } from '../../helpers/netns';
import { type HttpsCoordinator, startHttpsCoordinator } from './https-coordinator';

/** GETs `url` with these PEM files; resolves with the status and body, rejects on a refused handshake. */
function get(url: string, pem: { ca: string; cert?: string; key?: string }) {
  const read = (f?: string) => (f ? fs.readFileSync(f) : undefined);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = https.get(
      url,
      { ca: read(pem.ca), cert: read(pem.cert), key: read(pem.key), agent: false },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
        res.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}

describe('the HTTP listener off loopback', function () {
  this.timeout(60_000);
  let tls: HttpsCoordinator | undefined;
  let partition: Partition | undefined;
  let coordinator: RunningCoordinator | undefined;
  let pkiDir = '';

  before(async function () {
    if (!isRoot()) {
      console.log('      skipped: a network namespace needs root');
      this.skip();
    }
    tls = await startHttpsCoordinator('mt', 7);
    ({ partition, coordinator, pkiDir } = tls);
  });

  after(async () => {
    await tls?.stop();
  });

  it('serves HTTPS with the server certificate to a caller with a client certificate of the CA', async () => {
    assert.equal(coordinator!.httpUrl, `https://${partition!.hostAddress}:${new URL(coordinator!.httpUrl!).port}`);
    const pem = {
      ca: path.join(pkiDir, 'ca.pem'),
      cert: path.join(pkiDir, 'host.pem'),
      key: path.join(pkiDir, 'host.key'),
    };
    assert.deepEqual(await get(`${coordinator!.httpUrl}/healthz`, pem), { status: 200, body: 'SERVING\n' });
    const metrics = await get(`${coordinator!.httpUrl}/metrics`, pem);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^headroom_store_writable 1$/m);
  });

  it('refuses a certificate of the CA once it is revoked', async () => {
    const { X509Certificate } = await import('node:crypto');
    const hostPem = path.join(pkiDir, 'host.pem');
    const serial = new X509Certificate(fs.readFileSync(hostPem)).serialNumber.toLowerCase();
    const pem = { ca: path.join(pkiDir, 'ca.pem'), cert: hostPem, key: path.join(pkiDir, 'host.key') };
    execFileSync(
      process.execPath,
      [
        CTL_MAIN,
        '--coordinator',
        coordinator!.address.replace('127.0.0.1', 'localhost'),
        '--pki-dir',
        pkiDir,
        'pki',
        'revoke',
        '--serial',
        serial,
      ],
      { stdio: 'pipe' },
    );
    assert.deepEqual(await get(`${coordinator!.httpUrl}/metrics`, pem), {
      status: 403,
      body: `certificate ${serial} was revoked\n`,
    });
  });

  it('refuses a caller without a client certificate', async () => {
    await assert.rejects(
      get(`${coordinator!.httpUrl}/metrics`, { ca: path.join(pkiDir, 'ca.pem') }),
      /CERTIFICATE_REQUIRED|certificate required/i,
    );
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CertificateRenewer, renewalDelay } from '../../../agent/certificate-renewer';
import type { PkiClient } from '../../../common/client/connection';
import { createLogger } from '../../../common/util/log';
import { CertificateAuthority } from '../../../coordinator/pki/certificate-authority';
import { waitFor } from '../../helpers/wait';

const DAY = 86_400_000;

describe("the agent's certificate renewal point", () => {
  const cert = { notBefore: 0, notAfter: 365 * DAY };

  it('waits until 2/3 of the lifetime (or the configured fraction) has passed', () => {
    assert.equal(renewalDelay(cert, 2 / 3, 0), Math.floor((365 * DAY * 2) / 3));
    assert.equal(renewalDelay(cert, 0.5, 100 * DAY), 82.5 * DAY);
  });

  it('is due at once past that point, and past the expiry', () => {
    assert.equal(renewalDelay(cert, 2 / 3, 250 * DAY), 0);
    assert.equal(renewalDelay(cert, 2 / 3, 400 * DAY), 0);
  });
});

describe('a renewal that fails (real certificate files, a coordinator that refuses)', function () {
  this.timeout(20_000);
  let dir: string;
  let files: { caFile: string; certFile: string; keyFile: string };
  let issued: { pem: string; notAfter: number };

  /** A PKI client whose RenewCertificate fails with `code`. */
  const failing = (code: grpc.status, details: string) =>
    ({
      RenewCertificate: (_req: unknown, _opts: unknown, cb: (e: Partial<grpc.ServiceError>) => void) =>
        cb({ code, details, message: details }),
    }) as unknown as PkiClient;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-renewer-'));
    // Issued 300 days ago for a year: past its renewal point, 65 days before its expiry.
    const ca = await CertificateAuthority.create(dir, 'test CA', () => Date.now() - 300 * DAY);
    const c = await ca.issueClientWithKey({ role: 'agent', host: 'h', vm: 'v' });
    issued = c;
    files = {
      caFile: path.join(dir, 'ca.pem'),
      certFile: path.join(dir, 'agent.pem'),
      keyFile: path.join(dir, 'k.pem'),
    };
    fs.writeFileSync(files.certFile, c.pem);
    fs.writeFileSync(files.keyFile, c.keyPem, { mode: 0o600 });
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = async (client: PkiClient, now: () => number) => {
    const lines: string[] = [];
    const renewer = new CertificateRenewer({
      files,
      client,
      now,
      log: createLogger({ level: 'info', write: (l) => lines.push(l) }),
    });
    renewer.start();
    await waitFor(() => lines.some((l) => l.includes('certificate renewal failed')), 10_000, 'the failure');
    renewer.stop();
    return lines.join('\n');
  };

  it('warns with the expiry, the error and the fix, and leaves the files as they were', async () => {
    const log = await run(failing(grpc.status.UNAVAILABLE, 'connection refused'), Date.now);
    assert.match(
      log,
      /WARN +certificate renewal failed; the certificate expires in 6\d days certFile=\S+agent\.pem notAfter=\S+ error="UNAVAILABLE: connection refused" retryInMs=3600000 fix="it is tried again every hour/,
    );
    assert.equal(fs.readFileSync(files.certFile, 'utf8'), issued.pem);
  });

  it('says, as an error, that only a new enrolment helps once the certificate has expired', async () => {
    const log = await run(failing(grpc.status.UNAUTHENTICATED, 'no certificate'), () => issued.notAfter + 2 * DAY);
    assert.match(
      log,
      /ERROR certificate renewal failed; the certificate expired 2 days ago .* fix="enrol again: headroomctl pki rotate/,
    );
  });
});

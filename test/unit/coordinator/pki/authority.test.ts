import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../../../common/util/log';
import { createCsrPem, generateKeyPair } from '../../../../common/pki/x509';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { Authority, type SharedRecord } from '../../../../coordinator/pki/authority';
import { CertificateAuthority } from '../../../../coordinator/pki/certificate-authority';
import {
  CertificateNotFoundError,
  EnrolmentRefusedError,
  RenewalRefusedError,
} from '../../../../coordinator/pki/errors';
import { identityOfCertificate } from '../../../../coordinator/pki/identity';
import { PkiStore } from '../../../../coordinator/pki/pki-store';
import { pkiFiles } from '../../../../coordinator/pki/state-dir';

describe('the coordinator CA: tokens, enrolment, revocation (real keys, real SQLite)', function () {
  this.timeout(20_000);
  let dir: string;
  let now: number;
  let lines: string[];
  let authority: Authority;
  const csr = async () => createCsrPem(await generateKeyPair(), 'test');
  const agent = { role: 'agent' as const, host: 'h1', vm: 'v1' };

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-pki-'));
    now = Date.now();
    lines = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const ca = await CertificateAuthority.create(dir, 'test CA', () => now);
    authority = new Authority(ca, new PkiStore(pkiFiles(dir).database), log, () => now);
  });

  afterEach(() => {
    authority.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes the CA key 0600 in a 0700 directory, and never logs a secret', async () => {
    assert.equal(fs.statSync(pkiFiles(dir).caKey).mode & 0o777, 0o600);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const t = authority.createToken(agent, 0);
    const secret = t.text.split('.')[2];
    await authority.enroll(t.text, await csr());
    assert.ok(lines.length > 0);
    assert.ok(!lines.some((l) => l.includes(secret) || l.includes('PRIVATE KEY')), lines.join('\n'));
  });

  it('issues a certificate bound to the token identity, signed by the CA, for the key of the request', async () => {
    const keys = await generateKeyPair();
    const t = authority.createToken(agent, 60_000);
    const r = await authority.enroll(t.text, await createCsrPem(keys, 'ignored-subject'));
    const cert = new X509Certificate(r.certificatePem);
    assert.ok(cert.verify(new X509Certificate(authority.ca.certPem).publicKey));
    assert.deepEqual(identityOfCertificate({ subjectaltname: cert.subjectAltName! }), agent);
    assert.deepEqual(r.identity, agent);
    assert.equal(t.caFingerprint, authority.ca.fingerprint);
    assert.ok(t.text.endsWith(`.${authority.ca.fingerprint}`));
    assert.deepEqual(
      authority.list(false).map((c) => c.serial),
      [cert.serialNumber.toLowerCase()],
    );
  });

  it('accepts a token once', async () => {
    const t = authority.createToken(agent, 60_000);
    await authority.enroll(t.text, await csr());
    await assert.rejects(
      authority.enroll(t.text, await csr()),
      (e: unknown) => e instanceof EnrolmentRefusedError && e.why === 'used',
    );
    assert.ok(lines.some((l) => /WARN +enrolment refused .*why=used/.test(l)));
  });

  it('accepts a token once even when two enrolments race', async () => {
    const t = authority.createToken(agent, 60_000);
    const [a, b] = await Promise.allSettled([
      authority.enroll(t.text, await csr()),
      authority.enroll(t.text, await csr()),
    ]);
    assert.deepEqual([a.status, b.status].sort(), ['fulfilled', 'rejected']);
    assert.equal(authority.list(true).length, 1);
  });

  it('refuses an expired token, a wrong secret and a token of another CA', async () => {
    const t = authority.createToken(agent, 1_000);
    now += 1_000;
    await assert.rejects(
      authority.enroll(t.text, await csr()),
      (e: unknown) => e instanceof EnrolmentRefusedError && e.why === 'expired',
    );
    const u = authority.createToken(agent, 60_000);
    const parts = u.text.split('.');
    const wrongSecret = [parts[0], parts[1], 'A'.repeat(43), parts[3]].join('.');
    await assert.rejects(
      authority.enroll(wrongSecret, await csr()),
      (e: unknown) => e instanceof EnrolmentRefusedError && e.why === 'unknown',
    );
    const otherCa = [parts[0], parts[1], parts[2], 'f'.repeat(64)].join('.');
    await assert.rejects(
      authority.enroll(otherCa, await csr()),
      (e: unknown) => e instanceof EnrolmentRefusedError && e.why === 'unknown',
    );
    // None of these spent the token.
    await authority.enroll(u.text, await csr());
  });

  it('keeps the token when the request is malformed or not signed by its key', async () => {
    const t = authority.createToken(agent, 60_000);
    await assert.rejects(
      authority.enroll(t.text, 'not a csr'),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'csr_pem',
    );
    const good = await csr();
    const body = good.split('\n');
    // One character changed: no longer parseable, or no longer verifying; refused either way.
    body[3] = body[3].slice(0, 10) + (body[3][10] === 'A' ? 'B' : 'A') + body[3].slice(11);
    await assert.rejects(
      authority.enroll(t.text, body.join('\n')),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'csr_pem',
    );
    await authority.enroll(t.text, good);
  });

  it('checks what a token is for', () => {
    assert.throws(
      () => authority.createToken({ role: 'admin', name: 'x' }, 0),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'identity.role',
    );
    assert.throws(
      () => authority.createToken({ role: 'agent', host: 'h1', vm: 'bad/vm' }, 0),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'identity',
    );
    assert.throws(
      () => authority.createToken(agent, 8 * 86_400_000),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'ttl_ms',
    );
  });

  it('revokes by serial or identity, durably, and tells its listeners', async () => {
    const a = await authority.enroll(authority.createToken(agent, 0).text, await csr());
    const b = await authority.enroll(authority.createToken({ role: 'host', host: 'h1' }, 0).text, await csr());
    const serialA = new X509Certificate(a.certificatePem).serialNumber;
    const serialB = new X509Certificate(b.certificatePem).serialNumber.toLowerCase();
    const told: string[] = [];
    authority.onRevoked((rs) => told.push(...rs.map((r) => r.serial)));
    // Node prints serials upper-case: either form names the certificate.
    assert.equal(authority.revoke({ serial: serialA }, 'lost laptop')[0].revokeReason, 'lost laptop');
    assert.ok(authority.isRevoked(serialA));
    assert.ok(!authority.isRevoked(serialB));
    authority.revoke({ identity: { role: 'host', host: 'h1' } }, '');
    assert.deepEqual(told, [serialA.toLowerCase(), serialB]);
    assert.throws(() => authority.revoke({ serial: 'abcdef' }, ''), CertificateNotFoundError);
    assert.throws(() => authority.revoke({ identity: agent }, ''), CertificateNotFoundError);

    // A new Authority over the same files (a restart) knows them.
    const again = new Authority(authority.ca, new PkiStore(pkiFiles(dir).database), createLogger({ level: 'silent' }));
    assert.ok(again.isRevoked(serialA) && again.isRevoked(serialB));
    again.close();
  });

  it("rotates: enrolling with a rotation token revokes the identity's earlier certificates", async () => {
    const first = await authority.enroll(authority.createToken(agent, 0).text, await csr());
    const second = await authority.enroll(authority.createToken(agent, 0, true).text, await csr());
    const s1 = new X509Certificate(first.certificatePem).serialNumber.toLowerCase();
    const s2 = new X509Certificate(second.certificatePem).serialNumber.toLowerCase();
    assert.ok(authority.isRevoked(s1));
    assert.ok(!authority.isRevoked(s2));
    assert.match(
      authority.list(true).find((c) => c.serial === s1)!.revokeReason!,
      new RegExp(`rotated: replaced by ${s2}`),
    );
  });

  describe('renewal', () => {
    const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();

    it('issues a certificate for the same identity and the new key, and keeps the old one valid', async () => {
      const first = await authority.enroll(authority.createToken(agent, 0).text, await csr());
      const old = serialOf(first.certificatePem);
      now += 300 * 86_400_000;
      const r = await authority.renew(old, await csr());
      const cert = new X509Certificate(r.certificatePem);
      assert.deepEqual(identityOfCertificate({ subjectaltname: cert.subjectAltName! }), agent);
      assert.equal(r.serial, serialOf(r.certificatePem));
      assert.notEqual(r.serial, old);
      assert.ok(r.notAfter > first.notAfter, 'the renewed certificate outlives the old one');
      assert.ok(!authority.isRevoked(old));
      assert.deepEqual(authority.owner(r.serial), agent);
      assert.ok(lines.some((l) => l.includes('certificate renewed') && l.includes(old)));
    });

    it('refuses a revoked certificate and an expired one, naming the way out', async () => {
      const revoked = serialOf(
        (await authority.enroll(authority.createToken(agent, 0).text, await csr())).certificatePem,
      );
      authority.revoke({ serial: revoked }, 'lost');
      await assert.rejects(authority.renew(revoked, await csr()), (e: unknown) => {
        assert.ok(e instanceof RenewalRefusedError);
        assert.equal(e.why, 'revoked');
        assert.match(e.message, /revoked and cannot be renewed: enrol again .*pki rotate/);
        return true;
      });
      const expiring = await authority.enroll(authority.createToken(agent, 0).text, await csr());
      now = expiring.notAfter;
      await assert.rejects(
        authority.renew(serialOf(expiring.certificatePem), await csr()),
        (e: unknown) => e instanceof RenewalRefusedError && e.why === 'expired',
      );
    });

    it('answers NOT_FOUND for a serial it never issued, and INVALID_ARGUMENT for a bad request', async () => {
      await assert.rejects(authority.renew('4abc', await csr()), CertificateNotFoundError);
      const serial = serialOf(
        (await authority.enroll(authority.createToken(agent, 0).text, await csr())).certificatePem,
      );
      await assert.rejects(authority.renew(serial, 'not a csr'), (e: unknown) => {
        return e instanceof InvalidArgumentError && e.field === 'csr_pem';
      });
    });
  });

  describe('shared with other members (cluster mode)', () => {
    const describeRecord = (r: SharedRecord) =>
      'token' in r
        ? `token ${r.token.id}:${r.token.usedAt === undefined ? 'new' : 'used'}`
        : `${r.certificate.serial}:${r.certificate.revokedAt === undefined ? 'issued' : 'revoked'}`;

    it('publishes each token and certificate made, used or revoked before acknowledging it', async () => {
      const published: string[] = [];
      authority.shareRecords(async (records) => void published.push(...records.map(describeRecord)));
      const t = authority.createToken(agent, 60_000);
      await authority.published();
      const id = t.text.split('.')[1];
      assert.deepEqual(published, [`token ${id}:new`]);
      const r = await authority.enroll(t.text, await csr());
      const serial = new X509Certificate(r.certificatePem).serialNumber.toLowerCase();
      assert.deepEqual(published.slice(1), [`token ${id}:used`, `${serial}:issued`]);
      authority.revoke({ serial }, 'lost');
      await authority.published();
      assert.deepEqual(published.slice(3), [`${serial}:revoked`]);
    });

    it("applies another member's records: its tokens enrol here once, its revocations are refused here", async () => {
      // A second member: a copy of the CA's directory, its own store.
      const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-pki-copy-'));
      fs.cpSync(dir, copy, { recursive: true });
      fs.rmSync(pkiFiles(copy).database);
      const other = new Authority(
        await CertificateAuthority.load(copy, () => now),
        new PkiStore(pkiFiles(copy).database),
        createLogger({ level: 'silent' }),
        () => now,
      );
      try {
        const fromOther: SharedRecord[] = [];
        const fromHere: SharedRecord[] = [];
        other.shareRecords(async (records) => void fromOther.push(...records));
        authority.shareRecords(async (records) => void fromHere.push(...records));
        const t = other.createToken(agent, 60_000);
        await other.published();
        authority.applyRecords(fromOther.splice(0));
        const r = await authority.enroll(t.text, await csr());
        const serial = new X509Certificate(r.certificatePem).serialNumber.toLowerCase();

        const closed: string[] = [];
        authority.onRevoked((revoked) => closed.push(...revoked.map((c) => c.serial)));
        // Its use and the certificate reach the other member: the token is spent there too.
        other.applyRecords(fromHere);
        await assert.rejects(
          other.enroll(t.text, await csr()),
          (e) => e instanceof EnrolmentRefusedError && e.why === 'used',
        );
        other.revoke({ serial }, 'lost');
        await other.published();
        const revocation = fromOther.filter((x) => 'certificate' in x);
        authority.applyRecords(revocation);
        authority.applyRecords(revocation);
        assert.equal(authority.isRevoked(serial.toUpperCase()), true);
        assert.deepEqual(closed, [serial], 'announced once');
        // A record of the certificate as issued never undoes the revocation.
        authority.applyRecords([{ certificate: { ...revocation[0].certificate, revokedAt: undefined } }]);
        assert.equal(authority.isRevoked(serial), true);
      } finally {
        other.close();
        fs.rmSync(copy, { recursive: true, force: true });
      }
    });

    it('fails the revocation call when it cannot be published, and publishes again when repeated', async () => {
      const t = authority.createToken(agent, 60_000);
      const r = await authority.enroll(t.text, await csr());
      const serial = new X509Certificate(r.certificatePem).serialNumber.toLowerCase();
      let fail = true;
      const published: string[] = [];
      authority.shareRecords(async (records) => {
        if (fail) throw new Error('etcd has no quorum');
        published.push(...records.map(describeRecord));
      });
      authority.revoke({ serial }, 'lost');
      await assert.rejects(authority.published(), /no quorum/);
      fail = false;
      authority.revoke({ serial }, 'lost');
      await authority.published();
      assert.deepEqual(published, [`${serial}:revoked`]);
    });
  });
});

import { strict as assert } from 'node:assert';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { CertificateAuthority } from '../../../../coordinator/pki/certificate-authority';
import { reissueServerCertificate, writeServerCertificate } from '../../../../coordinator/pki/server-certificate';
import { ClientCheckingServerCredentials } from '../../../../coordinator/pki/server-credentials';
import { pkiFiles } from '../../../../coordinator/pki/state-dir';
import { IdentityError, memberOfCertificate } from '../../../../coordinator/pki/identity';

const DAY = 86_400_000;

describe("the coordinator's server certificate: issue, reissue, reload (real keys)", function () {
  this.timeout(20_000);
  let dir: string;
  let files: ReturnType<typeof pkiFiles>;
  const read = (f: string) => fs.readFileSync(f);

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-server-cert-'));
    files = pkiFiles(dir);
    const ca = await CertificateAuthority.create(dir, 'test CA');
    await writeServerCertificate(ca, dir, ['localhost', '127.0.0.1']);
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reissues from the same CA for new names, keeping the key unless asked for a new one', async () => {
    const key = fs.readFileSync(files.serverKey, 'utf8');
    const { previous, current } = await reissueServerCertificate({
      dir,
      names: ['coord.example', '10.0.0.5'],
      validityMs: 10 * DAY,
    });
    assert.deepEqual(previous.dnsNames, ['localhost']);
    assert.deepEqual([current.dnsNames, current.ipAddresses], [['coord.example'], ['10.0.0.5']]);
    assert.notEqual(current.serial, previous.serial);
    assert.ok(current.notAfter - Date.now() <= 10 * DAY);
    assert.equal(fs.readFileSync(files.serverKey, 'utf8'), key, 'same key');
    const leaf = new X509Certificate(read(files.serverCert));
    assert.ok(leaf.checkIssued(new X509Certificate(read(files.caCert))));
    assert.ok(leaf.checkPrivateKey(createPrivateKey(key)));

    const renewed = await reissueServerCertificate({ dir, newKey: true });
    assert.deepEqual([renewed.current.dnsNames, renewed.current.ipAddresses], [['coord.example'], ['10.0.0.5']]);
    assert.notEqual(fs.readFileSync(files.serverKey, 'utf8'), key, 'a new key');
  });

  it('refuses a name that is neither a DNS name nor an IP address, and writes nothing', async () => {
    const before = fs.readFileSync(files.serverCert, 'utf8');
    await assert.rejects(
      reissueServerCertificate({ dir, names: ['bad name'] }),
      (e: unknown) => e instanceof InvalidArgumentError && /"bad name" is neither/.test(e.message),
    );
    assert.equal(fs.readFileSync(files.serverCert, 'utf8'), before);
  });

  it("writes a cluster member's identity with --member, signed by the same CA; a bad host writes nothing", async () => {
    await reissueServerCertificate({ dir, names: ['10.0.0.6'], member: 'pve2' });
    const member = new X509Certificate(read(files.memberCert));
    assert.equal(member.subjectAltName, 'URI:headroom://member/pve2');
    assert.equal(memberOfCertificate({ subjectaltname: member.subjectAltName }), 'pve2');
    assert.ok(member.checkIssued(new X509Certificate(read(files.caCert))));
    assert.ok(member.checkPrivateKey(createPrivateKey(read(files.memberKey))));
    assert.equal(fs.statSync(files.memberKey).mode & 0o777, 0o600);

    const before = fs.readFileSync(files.serverCert, 'utf8');
    await assert.rejects(reissueServerCertificate({ dir, names: ['10.0.0.7'], member: 'a/b' }), IdentityError);
    assert.equal(fs.readFileSync(files.serverCert, 'utf8'), before);
  });

  it('reloads a matching pair, and keeps the old one when the key does not match the certificate', async () => {
    const [ca, cert1, key1] = [read(files.caCert), read(files.serverCert), read(files.serverKey)];
    const creds = new ClientCheckingServerCredentials(ca, cert1, key1);
    await reissueServerCertificate({ dir, newKey: true });
    const [cert2, key2] = [read(files.serverCert), read(files.serverKey)];
    assert.throws(() => creds.update(ca, cert2, key1));
    assert.equal(creds._getSecureContextOptions()?.cert, cert1);
    creds.update(ca, cert2, key2);
    assert.equal(creds._getSecureContextOptions()?.cert, cert2);
  });
});

/**
 * The coordinator's own certificate authority: makes the CA, and signs certificates for the coordinator
 * (server) and for clients (one headroom:// identity each). The CA key never leaves the state directory
 * and is never logged.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import {
  KEY_ALGORITHM,
  type KeyPair,
  type CryptoKey,
  generateKeyPair,
  importPrivateKeyPem,
  privateKeyPem,
  x509,
} from '../../common/pki/x509';
import { InvalidArgumentError } from '../domain/errors';
import { type Identity, identityUri, memberUri } from './identity';
import { writeFileAtomic } from '../../common/util/atomic-file';
import { PUBLIC_MODE, SECRET_MODE, ensurePrivateDir } from '../../common/pki/secret-files';
import { pkiFiles } from './state-dir';

const DAY_MS = 86_400_000;
export const CA_VALIDITY_MS = 10 * 365 * DAY_MS;
export const SERVER_VALIDITY_MS = 2 * 365 * DAY_MS;
export const CLIENT_VALIDITY_MS = 365 * DAY_MS;
/** Certificates start a little in the past, so that a client whose clock lags still accepts them. */
const BACKDATE_MS = 5 * 60_000;

export interface IssuedCertificate {
  serial: string;
  pem: string;
  notBefore: number;
  notAfter: number;
}

/**
 * A positive 128-bit serial in lower-case hex (RFC 5280: positive, at most 20 octets). The first byte is
 * 0x40..0x7f, so the hex has no leading zero and reads the same as Node's `serialNumber` of the peer.
 */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x3f) | 0x40;
  return b.toString('hex');
}

/** SHA-256 of a PEM certificate's DER, lower-case hex: what an enrolment token pins. */
export function certificateFingerprint(pem: string): string {
  return createHash('sha256')
    .update(Buffer.from(x509.PemConverter.decodeFirst(pem)))
    .digest('hex');
}

export class CertificateAuthority {
  private constructor(
    readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
    private readonly now: () => number,
  ) {}

  get certPem(): string {
    return this.cert.toString('pem');
  }

  get fingerprint(): string {
    return certificateFingerprint(this.certPem);
  }

  /** Makes a new CA (self-signed, may sign end-entity certificates only) and writes ca.pem and ca.key. */
  static async create(dir: string, name: string, now: () => number = Date.now): Promise<CertificateAuthority> {
    const files = pkiFiles(dir);
    ensurePrivateDir(dir);
    const keys = await generateKeyPair();
    const t = now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: newSerial(),
      name: [{ CN: [name] }],
      notBefore: new Date(t - BACKDATE_MS),
      notAfter: new Date(t + CA_VALIDITY_MS),
      keys,
      signingAlgorithm: KEY_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writeFileAtomic(files.caKey, await privateKeyPem(keys), SECRET_MODE);
    writeFileAtomic(files.caCert, cert.toString('pem'), PUBLIC_MODE);
    return new CertificateAuthority(cert, keys.privateKey, now);
  }

  /** Loads the CA of a state directory. @throws Error naming the file when it is missing or unreadable. */
  static async load(dir: string, now: () => number = Date.now): Promise<CertificateAuthority> {
    const files = pkiFiles(dir);
    const read = (file: string) => {
      try {
        return fs.readFileSync(file, 'utf8');
      } catch (e) {
        throw new Error(
          `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? e}); run headroomctl pki init first`,
        );
      }
    };
    const cert = new x509.X509Certificate(read(files.caCert));
    const key = await importPrivateKeyPem(read(files.caKey));
    return new CertificateAuthority(cert, key, now);
  }

  /**
   * A certificate for the coordinator: DNS names and IP addresses in its SAN, for TLS servers. Never
   * outlives the CA (sign() cuts it at the CA's notAfter).
   */
  async issueServer(
    publicKey: CryptoKey | x509.PublicKey,
    names: readonly string[],
    validityMs = SERVER_VALIDITY_MS,
  ): Promise<IssuedCertificate> {
    const sans = names.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n }));
    return this.sign(publicKey, names[0] ?? 'headroom-coordinator', sans, x509.ExtendedKeyUsage.serverAuth, validityMs);
  }

  /** A client certificate bound to `identity`, or to the cluster member of a host (its one SAN URI). */
  async issueClient(
    publicKey: CryptoKey | x509.PublicKey,
    identity: Identity | { member: string },
    validityMs = CLIENT_VALIDITY_MS,
  ): Promise<IssuedCertificate> {
    const uri = 'member' in identity ? memberUri(identity.member) : identityUri(identity);
    return this.sign(publicKey, uri, [{ type: 'url', value: uri }], x509.ExtendedKeyUsage.clientAuth, validityMs);
  }

  /**
   * The public key of a PKCS#10 request, after checking the request's own signature (proof that the
   * caller holds the private key). Its subject and extensions are ignored: the identity comes from the
   * enrolment token.
   * @throws InvalidArgumentError (csr_pem) when the request cannot be parsed or its signature does not verify.
   */
  static async csrPublicKey(csrPem: string): Promise<x509.PublicKey> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new InvalidArgumentError('csr_pem', 'not a PEM PKCS#10 certificate signing request');
    }
    let ok = false;
    try {
      ok = await csr.verify();
    } catch {
      ok = false;
    }
    if (!ok) throw new InvalidArgumentError('csr_pem', "the request's signature does not verify");
    return csr.publicKey;
  }

  /** A fresh key pair and a client certificate for it, for identities made on this machine (pki init). */
  async issueClientWithKey(identity: Identity | { member: string }): Promise<IssuedCertificate & { keyPem: string }> {
    const keys: KeyPair = await generateKeyPair();
    return { ...(await this.issueClient(keys.publicKey, identity)), keyPem: await privateKeyPem(keys) };
  }

  private async sign(
    publicKey: CryptoKey | x509.PublicKey,
    commonName: string,
    sans: { type: 'dns' | 'ip' | 'url'; value: string }[],
    usage: x509.ExtendedKeyUsage,
    validityMs: number,
  ): Promise<IssuedCertificate> {
    const t = this.now();
    const serial = newSerial();
    const notBefore = t - BACKDATE_MS;
    const notAfter = Math.min(t + validityMs, this.cert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: [{ CN: [commonName] }],
      issuer: this.cert.subjectName,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      publicKey,
      signingKey: this.key,
      signingAlgorithm: KEY_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([usage]),
        new x509.SubjectAlternativeNameExtension(sans),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ],
    });
    // Whole seconds: X.509 times carry no milliseconds.
    return {
      serial,
      pem: cert.toString('pem'),
      notBefore: cert.notBefore.getTime(),
      notAfter: cert.notAfter.getTime(),
    };
  }
}

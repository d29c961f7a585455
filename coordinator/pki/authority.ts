/**
 * The coordinator's PKI service: enrolment tokens (one-time, expiring), enrolment (token + CSR →
 * certificate bound to the token's identity), listing and revoking certificates. Keeps the revoked serials
 * in memory so that every call can be checked without I/O, and tells listeners (the auth interceptor) of
 * each revocation so they can close that certificate's open streams. In a cluster, where each member has
 * its own copy of the CA's directory, the certificate records are shared (cluster/shared-pki.ts): each one
 * issued or revoked here is published before it is acknowledged, and those published by other members are
 * applied here, so that any member may list, renew or revoke any certificate and every one refuses a revoked one;
 * so are enrolment tokens (their secrets' hashes), so that a token made before a change of leader still enrols.
 */
import type { Logger } from '../../common/util/log';
import {
  DEFAULT_TOKEN_TTL_MS,
  MAX_TOKEN_TTL_MS,
  formatEnrolmentToken,
  hashSecret,
  newEnrolmentToken,
  parseEnrolmentToken,
} from '../../common/pki/enrolment-token';
import { InvalidArgumentError } from '../domain/errors';
import { CertificateAuthority } from './certificate-authority';
import { CertificateNotFoundError, EnrolmentRefusedError, RenewalRefusedError } from './errors';
import { type Identity, checkIdentity, describeIdentity } from './identity';
import { type CertificateRecord, PkiStore, type StoredToken } from './pki-store';

/** What a cluster's members share of the CA's store (cluster/shared-pki.ts). */
export type SharedRecord = { certificate: CertificateRecord } | { token: StoredToken };
import { pkiFiles } from './state-dir';

export interface CreatedToken {
  /** The whole token, secret included: shown once. */
  text: string;
  expiresAt: number;
  caFingerprint: string;
}

export interface Renewed {
  certificatePem: string;
  caCertificatePem: string;
  serial: string;
  notAfter: number;
}

export interface Enrolled {
  certificatePem: string;
  caCertificatePem: string;
  identity: Identity;
  notAfter: number;
}

/** Node prints serials in upper case and may drop leading zeros; ours have none. */
export function normalizeSerial(serial: string): string {
  return serial
    .toLowerCase()
    .replace(/:/g, '')
    .replace(/^0+(?=.)/, '');
}

export class Authority {
  private readonly revoked: Set<string>;
  private readonly listeners = new Set<(revoked: readonly CertificateRecord[]) => void>();
  private publish: ((records: readonly SharedRecord[]) => Promise<void>) | undefined;
  /** The publication of the records made here, settled in order. */
  private publishing: Promise<void> = Promise.resolve();

  constructor(
    readonly ca: CertificateAuthority,
    private readonly store: PkiStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.revoked = new Set(store.revokedSerials().map(normalizeSerial));
  }

  /** Opens the CA and the store of a state directory made by `headroomctl pki init`. */
  static async open(dir: string, log: Logger, now: () => number = Date.now): Promise<Authority> {
    const ca = await CertificateAuthority.load(dir, now);
    return new Authority(ca, new PkiStore(pkiFiles(dir).database), log, now);
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(normalizeSerial(serial));
  }

  /**
   * Shares the tokens made or used and the certificates issued or revoked here with `publish` (a cluster's
   * members: cluster/shared-pki.ts); they are acknowledged once published.
   */
  shareRecords(publish: (records: readonly SharedRecord[]) => Promise<void>): void {
    this.publish = publish;
  }

  /** Settles when every record made so far is published; rejects when one could not be. */
  published(): Promise<void> {
    return this.publishing;
  }

  /**
   * Records of another member: tokens added when new and marked used when used there; certificates added
   * when new, revoked here too (and announced to the listeners) when revoked there. A revocation or a
   * token's use is never undone.
   */
  applyRecords(records: readonly SharedRecord[]): void {
    const revoked: CertificateRecord[] = [];
    for (const r of records) {
      if ('token' in r) {
        this.store.mergeToken(r.token);
        continue;
      }
      const c = r.certificate;
      const serial = normalizeSerial(c.serial);
      if (!this.store.certificate(serial)) this.store.addCertificate({ ...c, serial, revokedAt: undefined }, null);
      if (c.revokedAt === undefined || this.isRevoked(serial)) continue;
      revoked.push(...this.store.revoke([serial], c.revokeReason ?? 'revoked', c.revokedAt));
    }
    this.announce(revoked);
  }

  /** Calls `listener` with the certificates of each revocation, after it is durable. */
  onRevoked(listener: (revoked: readonly CertificateRecord[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * A one-time token for an agent or hypervisor-level identity. With `rotates`, enrolling with it revokes
   * the identity's earlier certificates. @throws InvalidArgumentError for an admin identity or a bad TTL.
   */
  createToken(identity: Identity, ttlMs: number, rotates = false): CreatedToken {
    if (identity.role === 'admin')
      throw new InvalidArgumentError(
        'identity.role',
        'enrolment is for AGENT or HOST identities; admin certificates come from pki init',
      );
    checkIdentityArgument(identity);
    const ttl = ttlMs === 0 ? DEFAULT_TOKEN_TTL_MS : ttlMs;
    if (ttl < 1_000 || ttl > MAX_TOKEN_TTL_MS)
      throw new InvalidArgumentError('ttl_ms', `must be from 1000 to ${MAX_TOKEN_TTL_MS}`);
    const token = newEnrolmentToken(this.ca.fingerprint);
    const createdAt = this.now();
    const expiresAt = createdAt + ttl;
    const stored = { id: token.id, secretHash: hashSecret(token.secret), identity, createdAt, expiresAt, rotates };
    this.store.addToken(stored);
    void this.shared([{ token: stored }]);
    this.log.info('enrolment token created', {
      tokenId: token.id,
      identity: describeIdentity(identity),
      expires: new Date(expiresAt).toISOString(),
      rotates,
    });
    return { text: formatEnrolmentToken(token), expiresAt, caFingerprint: token.caFingerprint };
  }

  /**
   * Trades a token and a CSR for a certificate. The CSR is checked before the token is spent, so a
   * malformed request does not burn it. @throws InvalidArgumentError, EnrolmentRefusedError.
   */
  async enroll(tokenText: string, csrPem: string): Promise<Enrolled> {
    let token;
    try {
      token = parseEnrolmentToken(tokenText);
    } catch (e) {
      throw new InvalidArgumentError('token', (e as Error).message);
    }
    const secretHash = hashSecret(token.secret);
    const found = token.caFingerprint === this.ca.fingerprint ? this.store.findToken(token.id, secretHash) : undefined;
    const refuse = (why: EnrolmentRefusedError['why']) => {
      this.log.warn('enrolment refused', { tokenId: token.id, why });
      return new EnrolmentRefusedError(token.id, why);
    };
    if (!found) throw refuse('unknown');
    if (found.usedAt !== undefined) throw refuse('used');
    if (found.expiresAt <= this.now()) throw refuse('expired');
    const publicKey = await CertificateAuthority.csrPublicKey(csrPem);
    if (!this.store.claimToken(token.id, secretHash, this.now())) {
      // Lost a race with another use of the same token, or it expired meanwhile.
      throw refuse(this.store.findToken(token.id, secretHash)?.usedAt !== undefined ? 'used' : 'expired');
    }
    const cert = await this.ca.issueClient(publicKey, found.identity);
    const superseded = this.store.addCertificate(
      { serial: cert.serial, identity: found.identity, notBefore: cert.notBefore, notAfter: cert.notAfter },
      token.id,
      found.rotates ? { reason: `rotated: replaced by ${cert.serial}`, at: this.now() } : undefined,
    );
    this.log.info('enrolled', { identity: describeIdentity(found.identity), serial: cert.serial, tokenId: token.id });
    this.announce(superseded);
    await this.shared([
      { token: this.store.storedToken(token.id)! },
      ...[...superseded, this.store.certificate(cert.serial)!].map((c) => ({ certificate: c })),
    ]);
    return {
      certificatePem: cert.pem,
      caCertificatePem: this.ca.certPem,
      identity: found.identity,
      notAfter: cert.notAfter,
    };
  }

  /** Whose certificate this serial is, if this CA issued it. */
  owner(serial: string): Identity | undefined {
    return this.store.certificate(normalizeSerial(serial))?.identity;
  }

  /**
   * A new certificate for the identity of certificate `serial` and the key of `csrPem`, as long as
   * `serial` is neither revoked nor expired. The caller must be that identity (the authorizer checks it
   * on every call). The old certificate stays valid until its own expiry, so that connections open with
   * it are not cut and a renewal whose answer is lost can be tried again.
   * @throws CertificateNotFoundError, RenewalRefusedError, InvalidArgumentError (csr_pem).
   */
  async renew(serial: string, csrPem: string): Promise<Renewed> {
    const old = this.store.certificate(normalizeSerial(serial));
    if (!old) throw new CertificateNotFoundError(`with serial ${normalizeSerial(serial)}`);
    if (old.revokedAt !== undefined) throw new RenewalRefusedError(old.serial, 'revoked');
    if (old.notAfter <= this.now()) throw new RenewalRefusedError(old.serial, 'expired');
    const publicKey = await CertificateAuthority.csrPublicKey(csrPem);
    const cert = await this.ca.issueClient(publicKey, old.identity);
    this.store.addCertificate(
      { serial: cert.serial, identity: old.identity, notBefore: cert.notBefore, notAfter: cert.notAfter },
      null,
    );
    await this.shared([{ certificate: this.store.certificate(cert.serial)! }]);
    this.log.info('certificate renewed', {
      identity: describeIdentity(old.identity),
      serial: cert.serial,
      previous: old.serial,
      notAfter: new Date(cert.notAfter).toISOString(),
    });
    return {
      certificatePem: cert.pem,
      caCertificatePem: this.ca.certPem,
      serial: cert.serial,
      notAfter: cert.notAfter,
    };
  }

  /** Records a certificate made on this machine (pki init), so that it can be listed and revoked. */
  record(cert: CertificateRecord): void {
    this.store.addCertificate(cert, null);
  }

  list(includeRevoked: boolean): CertificateRecord[] {
    return this.store.certificates(includeRevoked);
  }

  /**
   * Revokes one certificate by serial, or every active one of an identity, durably, then closes their
   * streams (through the listeners). @throws CertificateNotFoundError when nothing matches.
   */
  revoke(target: { serial: string } | { identity: Identity }, reason: string): CertificateRecord[] {
    let serials: string[];
    if ('serial' in target) {
      const serial = normalizeSerial(target.serial);
      const cert = this.store.certificate(serial);
      if (!cert) throw new CertificateNotFoundError(`with serial ${serial}`);
      // Published again: a retry after a publication that failed.
      if (cert.revokedAt !== undefined) {
        void this.shared([{ certificate: cert }]);
        return [cert];
      }
      serials = [serial];
    } else {
      checkIdentityArgument(target.identity);
      serials = this.store.activeOf(target.identity).map((c) => c.serial);
      if (serials.length === 0) throw new CertificateNotFoundError(`active for ${describeIdentity(target.identity)}`);
    }
    const revoked = this.store.revoke(serials, reason || 'revoked by an administrator', this.now());
    this.announce(revoked);
    void this.shared(revoked.map((c) => ({ certificate: c })));
    return revoked;
  }

  close(): void {
    this.store.close();
  }

  /** Publishes `records` when sharing; settles as published() then does. */
  private shared(records: readonly SharedRecord[]): Promise<void> {
    const publish = this.publish;
    if (publish && records.length > 0) {
      const previous = this.publishing.catch(() => undefined);
      this.publishing = previous.then(() => publish(records));
    }
    return this.publishing;
  }

  private announce(revoked: readonly CertificateRecord[]): void {
    if (revoked.length === 0) return;
    for (const c of revoked) {
      this.revoked.add(normalizeSerial(c.serial));
      this.log.warn('certificate revoked', {
        serial: c.serial,
        identity: describeIdentity(c.identity),
        reason: c.revokeReason,
      });
    }
    for (const l of this.listeners) l(revoked);
  }
}

function checkIdentityArgument(identity: Identity): void {
  try {
    checkIdentity(identity);
  } catch (e) {
    throw new InvalidArgumentError('identity', (e as Error).message);
  }
}

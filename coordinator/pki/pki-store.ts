/**
 * The durable state of the coordinator's CA beside its keys: enrolment tokens (only a hash of each secret)
 * and every certificate it issued, with revocations. One SQLite file (WAL, fsync on commit); a token is
 * claimed by one conditional UPDATE, so it can be used once even by racing callers or processes.
 */
import Database from 'better-sqlite3';
import type { Identity } from './identity';

export interface TokenRecord {
  id: string;
  identity: Identity;
  createdAt: number;
  expiresAt: number;
  usedAt?: number;
  /** When used, revoke the identity's earlier certificates (a rotation). */
  rotates: boolean;
}

/** A token as stored: a hash of its secret, never the secret. */
export type StoredToken = TokenRecord & { secretHash: string };

export interface CertificateRecord {
  serial: string;
  identity: Identity;
  notBefore: number;
  notAfter: number;
  revokedAt?: number;
  revokeReason?: string;
}

type Row = Record<string, unknown>;

function identityOf(r: Row): Identity {
  if (r.role === 'agent') return { role: 'agent', host: r.host as string, vm: r.vm as string };
  if (r.role === 'host') return { role: 'host', host: r.host as string };
  return { role: 'admin', name: r.name as string };
}

function identityColumns(id: Identity) {
  return {
    role: id.role,
    host: id.role === 'admin' ? '' : id.host,
    vm: id.role === 'agent' ? id.vm : '',
    name: id.role === 'admin' ? id.name : '',
  };
}

function certificateOf(r: Row): CertificateRecord {
  return {
    serial: r.serial as string,
    identity: identityOf(r),
    notBefore: r.not_before as number,
    notAfter: r.not_after as number,
    revokedAt: (r.revoked_at as number | null) ?? undefined,
    revokeReason: (r.revoke_reason as string | null) ?? undefined,
  };
}

export class PkiStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS enrolment_tokens (
        id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL,
        role TEXT NOT NULL, host TEXT NOT NULL, vm TEXT NOT NULL, name TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, rotates INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS certificates (
        serial TEXT PRIMARY KEY,
        role TEXT NOT NULL, host TEXT NOT NULL, vm TEXT NOT NULL, name TEXT NOT NULL,
        not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, token_id TEXT,
        revoked_at INTEGER, revoke_reason TEXT);
    `);
  }

  addToken(t: StoredToken): void {
    this.db
      .prepare(
        `INSERT INTO enrolment_tokens VALUES (@id, @secretHash, @role, @host, @vm, @name, @createdAt, @expiresAt, NULL, @rotates)`,
      )
      .run({
        id: t.id,
        secretHash: t.secretHash,
        ...identityColumns(t.identity),
        createdAt: t.createdAt,
        expiresAt: t.expiresAt,
        rotates: t.rotates ? 1 : 0,
      });
  }

  /** The token with this id and secret hash, used or not; undefined when there is none. */
  findToken(id: string, secretHash: string): TokenRecord | undefined {
    const r = this.db.prepare('SELECT * FROM enrolment_tokens WHERE id = ? AND secret_hash = ?').get(id, secretHash) as
      Row | undefined;
    if (!r) return undefined;
    return {
      id: r.id as string,
      identity: identityOf(r),
      createdAt: r.created_at as number,
      expiresAt: r.expires_at as number,
      usedAt: (r.used_at as number | null) ?? undefined,
      rotates: r.rotates === 1,
    };
  }

  /** The token with this id as stored (its secret's hash included), to share with a cluster's members. */
  storedToken(id: string): StoredToken | undefined {
    const r = this.db.prepare('SELECT secret_hash FROM enrolment_tokens WHERE id = ?').get(id) as Row | undefined;
    if (!r) return undefined;
    return { ...this.findToken(id, r.secret_hash as string)!, secretHash: r.secret_hash as string };
  }

  /** A token another cluster member made or used: added when new, marked used when used there. */
  mergeToken(t: StoredToken): void {
    this.db.transaction(() => {
      if (!this.findToken(t.id, t.secretHash)) this.addToken(t);
      if (t.usedAt !== undefined)
        this.db.prepare('UPDATE enrolment_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL').run(t.usedAt, t.id);
    })();
  }

  /** Marks the token used if it is still unused and unexpired at `now`. True when this call claimed it. */
  claimToken(id: string, secretHash: string, now: number): boolean {
    const r = this.db
      .prepare(
        'UPDATE enrolment_tokens SET used_at = ? WHERE id = ? AND secret_hash = ? AND used_at IS NULL AND expires_at > ?',
      )
      .run(now, id, secretHash, now);
    return r.changes === 1;
  }

  /**
   * Records an issued certificate, and in the same transaction revokes `supersede` (the identity's earlier
   * certificates on a rotation). Returns the revoked ones.
   */
  addCertificate(
    cert: CertificateRecord,
    tokenId: string | null,
    supersede?: { reason: string; at: number },
  ): CertificateRecord[] {
    return this.db.transaction(() => {
      const revoked = supersede
        ? this.revokeWhere(
            this.activeOf(cert.identity).map((c) => c.serial),
            supersede.reason,
            supersede.at,
          )
        : [];
      this.db
        .prepare(
          `INSERT INTO certificates VALUES (@serial, @role, @host, @vm, @name, @notBefore, @notAfter, @tokenId, NULL, NULL)`,
        )
        .run({
          serial: cert.serial,
          ...identityColumns(cert.identity),
          notBefore: cert.notBefore,
          notAfter: cert.notAfter,
          tokenId,
        });
      return revoked;
    })();
  }

  certificate(serial: string): CertificateRecord | undefined {
    const r = this.db.prepare('SELECT * FROM certificates WHERE serial = ?').get(serial) as Row | undefined;
    return r ? certificateOf(r) : undefined;
  }

  certificates(includeRevoked: boolean): CertificateRecord[] {
    const where = includeRevoked ? '' : 'WHERE revoked_at IS NULL';
    return (
      this.db.prepare(`SELECT * FROM certificates ${where} ORDER BY role, host, vm, name, not_before`).all() as Row[]
    ).map(certificateOf);
  }

  /** The identity's certificates that are not revoked. */
  activeOf(id: Identity): CertificateRecord[] {
    const c = identityColumns(id);
    return (
      this.db
        .prepare(
          'SELECT * FROM certificates WHERE role = ? AND host = ? AND vm = ? AND name = ? AND revoked_at IS NULL',
        )
        .all(c.role, c.host, c.vm, c.name) as Row[]
    ).map(certificateOf);
  }

  /** Revokes those of `serials` not revoked yet; returns them as revoked. */
  revoke(serials: readonly string[], reason: string, at: number): CertificateRecord[] {
    return this.db.transaction(() => this.revokeWhere(serials, reason, at))();
  }

  revokedSerials(): string[] {
    return (this.db.prepare('SELECT serial FROM certificates WHERE revoked_at IS NOT NULL').all() as Row[]).map(
      (r) => r.serial as string,
    );
  }

  close(): void {
    this.db.close();
  }

  private revokeWhere(serials: readonly string[], reason: string, at: number): CertificateRecord[] {
    const stmt = this.db.prepare(
      'UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE serial = ? AND revoked_at IS NULL',
    );
    const done: CertificateRecord[] = [];
    for (const s of serials) {
      if (stmt.run(at, reason, s).changes === 1) done.push(this.certificate(s)!);
    }
    return done;
  }
}

/**
 * The enrolment token's text form, shared by `headroomctl enroll create` (which prints it) and
 * `headroom-agent enroll` (which uses it): `hre1.<id>.<secret>.<ca sha-256>`. Like kubeadm's token plus its
 * discovery hash in one string: the id finds the stored token, the secret proves the holder was given it,
 * and the CA certificate's SHA-256 fingerprint lets the agent trust the coordinator on first contact.
 */
import { createHash, randomBytes } from 'node:crypto';

const PREFIX = 'hre1';

/** How long a token is valid unless told otherwise, and at most. */
export const DEFAULT_TOKEN_TTL_MS = 3_600_000;
export const MAX_TOKEN_TTL_MS = 7 * 86_400_000;
const ID = /^[0-9a-f]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const FINGERPRINT = /^[0-9a-f]{64}$/;

export interface EnrolmentToken {
  /** 16 hex digits: the stored token's key. Not secret. */
  id: string;
  /** 32 random bytes, base64url: stored only as its SHA-256. */
  secret: string;
  /** The coordinator's CA certificate, SHA-256 of its DER, lower-case hex. */
  caFingerprint: string;
}

export class TokenFormatError extends Error {}

export function newEnrolmentToken(caFingerprint: string): EnrolmentToken {
  return {
    id: randomBytes(8).toString('hex'),
    secret: randomBytes(32).toString('base64url'),
    caFingerprint: normalizeFingerprint(caFingerprint),
  };
}

export function formatEnrolmentToken(t: EnrolmentToken): string {
  return `${PREFIX}.${t.id}.${t.secret}.${t.caFingerprint}`;
}

/** Parses a token as printed. @throws TokenFormatError saying which part is wrong (never echoing the secret). */
export function parseEnrolmentToken(text: string): EnrolmentToken {
  const parts = text.trim().split('.');
  if (parts.length !== 4 || parts[0] !== PREFIX) {
    throw new TokenFormatError(
      `not an enrolment token (expected ${PREFIX}.<id>.<secret>.<ca-sha256>, as headroomctl enroll create prints it)`,
    );
  }
  const [, id, secret, caFingerprint] = parts;
  if (!ID.test(id)) throw new TokenFormatError('enrolment token: the id is not 16 hex digits');
  if (!SECRET.test(secret)) throw new TokenFormatError('enrolment token: the secret is malformed');
  if (!FINGERPRINT.test(caFingerprint))
    throw new TokenFormatError('enrolment token: the CA fingerprint is not 64 hex digits');
  return { id, secret, caFingerprint };
}

/** What the coordinator stores instead of the secret. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** `AB:CD:…` (as Node and openssl print fingerprints) or plain hex → lower-case hex. */
export function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toLowerCase();
}

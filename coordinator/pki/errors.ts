/**
 * Typed errors of authentication, authorisation and enrolment. rpc/status.ts maps them to gRPC codes with
 * the domain's errors, in its one table.
 */
import { DomainError } from '../domain/errors';

/** The caller proved no identity we accept: no client certificate from our CA, or a revoked one. */
export class UnauthenticatedError extends DomainError {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The caller is known but its role may not do this. */
export class PermissionDeniedError extends DomainError {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** An enrolment token that is unknown, wrong, expired or already used. */
export class EnrolmentRefusedError extends DomainError {
  constructor(
    readonly tokenId: string,
    readonly why: 'unknown' | 'expired' | 'used',
  ) {
    super(
      why === 'unknown'
        ? 'enrolment token refused: unknown token or wrong secret'
        : `enrolment token refused: it was already ${why === 'used' ? 'used' : 'expired'}`,
    );
  }
}

/** No certificate with this serial, or none for this identity. */
export class CertificateNotFoundError extends DomainError {
  constructor(what: string) {
    super(`no certificate ${what}`);
  }
}

/**
 * A certificate that may not be renewed: revoked (enrol again: `headroomctl pki rotate`) or expired (a
 * renewal needs a valid certificate; enrol again with a new token).
 */
export class RenewalRefusedError extends DomainError {
  constructor(
    readonly serial: string,
    readonly why: 'revoked' | 'expired',
  ) {
    super(
      `certificate ${serial} is ${why} and cannot be renewed: enrol again with a token from headroomctl pki rotate` +
        ' (admin and host identities: headroomctl pki init on a new directory, or ask an administrator)',
    );
  }
}

/** A PKI call reached a coordinator that runs no CA of its own. */
export class PkiNotConfiguredError extends DomainError {
  constructor() {
    super('this coordinator runs no CA of its own: start it with --pki-dir (after headroomctl pki init)');
  }
}

/**
 * The one table that maps domain errors to gRPC status codes. Unknown errors become a generic INTERNAL
 * and are logged: raw exception text never reaches a client.
 */
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import {
  BackupCatalogUnavailableError,
  BackupNotFoundError,
  BackupRunConflictError,
  BackupRunNotFoundError,
  BackupRunnerUnavailableError,
  CoordinatorStoppingError,
  DomainError,
  HostNotFoundError,
  InvalidArgumentError,
  NotQuiescableError,
  RequestConflictError,
  StaleFencingTokenError,
  StoreUnavailableError,
  TokenEndedError,
  TokenNotFoundError,
} from '../domain/errors';
import {
  CertificateNotFoundError,
  EnrolmentRefusedError,
  PermissionDeniedError,
  PkiNotConfiguredError,
  RenewalRefusedError,
  UnauthenticatedError,
} from '../pki/errors';

const CODES: [new (...args: never[]) => DomainError, status][] = [
  [InvalidArgumentError, status.INVALID_ARGUMENT],
  [TokenNotFoundError, status.NOT_FOUND],
  [HostNotFoundError, status.NOT_FOUND],
  // The holder's lease is gone or was never its own: it must stop, not retry.
  [TokenEndedError, status.FAILED_PRECONDITION],
  [StaleFencingTokenError, status.FAILED_PRECONDITION],
  // Quiesce/Thaw of a GUEST token: no retry makes it a HYPERVISOR one.
  [NotQuiescableError, status.FAILED_PRECONDITION],
  [RequestConflictError, status.ALREADY_EXISTS],
  [StoreUnavailableError, status.UNAVAILABLE],
  // Retry, with another coordinator or this one once it is back.
  [CoordinatorStoppingError, status.UNAVAILABLE],
  // Who may call (coordinator/pki): no acceptable certificate; a known caller outside its role; a spent token.
  [UnauthenticatedError, status.UNAUTHENTICATED],
  [PermissionDeniedError, status.PERMISSION_DENIED],
  [EnrolmentRefusedError, status.PERMISSION_DENIED],
  [CertificateNotFoundError, status.NOT_FOUND],
  [PkiNotConfiguredError, status.FAILED_PRECONDITION],
  // Renewal of a revoked or expired certificate: only a new enrolment helps.
  [RenewalRefusedError, status.FAILED_PRECONDITION],
  // The snapshot catalog and the coordinator's own backup runs (rpc/snapshot-service.ts).
  [BackupCatalogUnavailableError, status.FAILED_PRECONDITION],
  [BackupNotFoundError, status.NOT_FOUND],
  [BackupRunnerUnavailableError, status.FAILED_PRECONDITION],
  [BackupRunConflictError, status.ALREADY_EXISTS],
  [BackupRunNotFoundError, status.NOT_FOUND],
];

export function toServiceError(error: unknown, log: Logger, method: string): Partial<ServiceError> {
  for (const [type, code] of CODES) {
    if (error instanceof type) return { code, details: error.message, metadata: new Metadata() };
  }
  log.error('internal error', { method, error: error as Error, stack: (error as Error)?.stack });
  return { code: status.INTERNAL, details: 'internal error (see the coordinator log)', metadata: new Metadata() };
}

/** The HTTP status for the same table (the dashboard's JSON endpoints): undefined for an unknown error. */
export function httpStatusOf(error: unknown): number | undefined {
  const code = CODES.find(([type]) => error instanceof type)?.[1];
  const HTTP: Partial<Record<status, number>> = {
    [status.INVALID_ARGUMENT]: 400,
    [status.NOT_FOUND]: 404,
    [status.UNAVAILABLE]: 503,
    [status.PERMISSION_DENIED]: 403,
    [status.UNAUTHENTICATED]: 401,
    [status.FAILED_PRECONDITION]: 409,
    [status.ALREADY_EXISTS]: 409,
    [status.RESOURCE_EXHAUSTED]: 429,
  };
  return code === undefined ? undefined : HTTP[code];
}

/**
 * What a failed call to the coordinator means to a lease holder: unreachable (onUnreachable applies),
 * worth retrying with the same request id, or the lease gone for good. Shared by the acquire, renew and
 * release steps of the guarded run.
 */
import * as grpc from '@grpc/grpc-js';

/** Codes that mean "the coordinator could not be reached" (onUnreachable applies). */
export const UNREACHABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
/** Codes worth retrying a call for: the next attempt may get through (an acquire keeps its request_id: idempotent). */
export const TRANSIENT = new Set([
  ...UNREACHABLE,
  grpc.status.ABORTED,
  grpc.status.CANCELLED, // the server went away mid-stream; our own cancels never get here
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.INTERNAL,
  grpc.status.UNKNOWN,
]);
/** Renew answers that mean the lease is gone for good. */
export const LEASE_GONE = new Set([grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND]);

/** The gRPC status code of a failed call; undefined for an error that is not one. */
export const errorCode = (err: unknown): number | undefined => (err as grpc.ServiceError)?.code;
/** What a failed call says, for logs and people: the status details, else the error message, on one line. */
export const errorText = (err: unknown): string =>
  cleanDetails((err as grpc.ServiceError)?.details || (err as Error)?.message || String(err));

/** `UNAVAILABLE` for 14, and so on; the number itself for codes grpc-js does not know. */
export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}

/**
 * Status details as one line: grpc-js puts OpenSSL's multi-line errors and an empty "Resolution note"
 * into UNAVAILABLE details; a message on stderr should be one line.
 */
export function cleanDetails(details: string): string {
  return details
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * What can go wrong in headroomctl, and the exit codes it maps to (sysexits.h where one fits): a usage
 * error (64), a failed call to the coordinator (1). host-backup adds the child's own code and 75.
 */
import * as grpc from '@grpc/grpc-js';
import { statusName } from '../common/client/call-status';

export const EXIT_OK = 0;
/** A call to the coordinator failed. */
export const EXIT_FAILURE = 1;
/** EX_USAGE: the command line was wrong. */
export const EXIT_USAGE = 64;
/** EX_TEMPFAIL: no token in time (denied, lease lost, coordinator unreachable until the window ended). */
export const EXIT_TEMPFAIL = 75;

/** Thrown when the command line is wrong; `usage` is the text of the command it was meant for. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The usage text to print after the message; set by the dispatcher once the command is known. */
    public usage = '',
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Thrown when a call to the coordinator failed; carries the method and the gRPC status. */
export class RpcError extends Error {
  constructor(
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`${method}: ${statusName(code)}: ${details}`);
    this.name = 'RpcError';
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
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

/** Wraps what a grpc-js call rejected with into an RpcError naming the method. Other errors pass through. */
export function toRpcError(method: string, err: unknown): unknown {
  if (!isServiceError(err)) return err;
  return new RpcError(method, err.code, cleanDetails(err.details || err.message));
}

/**
 * The line printed for a failed call: `<method>: <status name>: <details>`, saying in so many words that
 * the coordinator is unreachable when it is.
 */
export function describeRpcError(err: RpcError, coordinator: string): string {
  if (err.code === grpc.status.UNAVAILABLE) {
    return `${err.method}: UNAVAILABLE: the coordinator at ${coordinator} is unreachable (${err.details})`;
  }
  if (err.code === grpc.status.DEADLINE_EXCEEDED) {
    return `${err.method}: DEADLINE_EXCEEDED: the coordinator at ${coordinator} did not answer in time (${err.details})`;
  }
  return err.message;
}

/**
 * A failed call to the coordinator, as headroomctl reports it (exit EXIT_FAILURE, common/util/exit-codes.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { statusName } from '../common/client/call-status';

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

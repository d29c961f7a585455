/**
 * A failed call to the coordinator, as headroomctl reports it (exit EXIT_FAILURE, common/util/exit-codes.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { cleanDetails, statusName } from '../common/client/call-status';
import {
  type ConnectionContext,
  type TlsSettingNames,
  describeDiagnosis,
  diagnoseCall,
} from '../common/client/tls-diagnosis';

/** headroomctl's settings that fix a connection's failures (host-backup, run by headroomctl, names them too). */
export const CTL_TLS_SETTINGS: TlsSettingNames = {
  ca: '--tls-ca FILE, or --pki-dir DIR',
  clientCertificate: '--tls-cert FILE --tls-key FILE, or --pki-dir DIR for the admin identity',
  address: '--coordinator',
};

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

/** Wraps what a grpc-js call rejected with into an RpcError naming the method. Other errors pass through. */
export function toRpcError(method: string, err: unknown): unknown {
  if (!isServiceError(err)) return err;
  return new RpcError(method, err.code, cleanDetails(err.details || err.message));
}

/**
 * The line printed for a failed call: `<method>: <status name>: <details>`, or, when the status is about
 * the connection (unreachable, TLS, identity), what is wrong and which flag fixes it.
 */
export function describeRpcError(err: RpcError, connection: ConnectionContext): string {
  const d = diagnoseCall(err.code, err.details, connection);
  return d ? `${err.method}: ${statusName(err.code)}: ${describeDiagnosis(d)}` : err.message;
}

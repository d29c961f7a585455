/**
 * What a failed call says about the connection, in one place for headroomctl, host-backup and the agent:
 * grpc-js reports a TLS failure as UNAVAILABLE like a coordinator that is down, with Node's or OpenSSL's
 * text in the details. Telling them apart matters: unreachability passes, while an untrusted server
 * certificate, a name the certificate does not carry, a missing client certificate or a refusal by the
 * access rule stay until someone changes a setting — so they are said once, with the setting to change,
 * and not retried as if waiting could help.
 */
import * as grpc from '@grpc/grpc-js';
import { cleanDetails } from './call-status';

export type ConnectionFailure =
  /** Down, refused, no route: waiting may help. */
  | 'unreachable'
  /** No answer within the deadline: waiting may help. */
  | 'timeout'
  /** The coordinator's certificate is not signed by the CA this client trusts (or expired). */
  | 'untrusted-server'
  /** The coordinator's certificate does not carry the name or address this client connected to. */
  | 'server-name'
  /** The coordinator wants a client certificate of its CA, and got none or another one. */
  | 'client-certificate'
  /** The certificate is good, but its role may not make this call. */
  | 'access-denied'
  /** TLS spoken to a plaintext coordinator. */
  | 'tls-to-plaintext'
  /** Plaintext spoken to a TLS coordinator. */
  | 'plaintext-to-tls';

/** How the client connected: what the diagnosis can blame, and the names of the settings to change. */
export interface ConnectionContext {
  /** The coordinator's address as given. */
  address: string;
  /** TLS was used (connection.ts's usesTls). */
  tls: boolean;
  names: TlsSettingNames;
}

/** The names of the settings that fix each cause, as the program's user writes them. */
export interface TlsSettingNames {
  /** Where the coordinator's CA certificate is given. */
  ca: string;
  /** Where the client certificate and key are given. */
  clientCertificate: string;
  /** Where the coordinator's address is given. */
  address: string;
}

export interface Diagnosis {
  failure: ConnectionFailure;
  /** True when retrying cannot help: a setting must change (here or on the coordinator). */
  permanent: boolean;
  /** What is wrong, one line: the coordinator's own words for its refusals, else the cause with the platform's words in parentheses. */
  cause: string;
  /** What to change, one line; empty for the passing failures. */
  fix: string;
}

const UNTRUSTED =
  /self[- ]signed certificate|unable to (get (local )?issuer|verify the first) certificate|certificate signature failure|certificate has expired|certificate is not yet valid/i;
const SERVER_NAME = /ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames|not in the cert's altnames/i;
const NOT_TLS = /wrong version number|packet length too long|unknown protocol|http request/i;
const CLIENT_CERT_ALERT = /certificate required|alert (number )?116|alert bad certificate|alert handshake failure/i;
/** All grpc-js says when a TLS server closes a plaintext HTTP/2 connection (a refused or reset one says more). */
const PLAINTEXT_CLOSED = /^Failed to connect$/;

/** The platform's words: grpc-js wraps them in "No connection established. Last error: Error: …". */
function platformText(details: string): string {
  return cleanDetails(
    details
      .replace(/^.*Last error:\s*/s, '')
      .replace(/^Error(?: \[(\w+)\])?:\s*/, (_, code?: string) => (code ? `${code}: ` : ''))
      .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/, '') // grpc-js's timestamp of the attempt
      .replace(/\b[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):\S*/, '$1'), // OpenSSL's reason, without its source line
  );
}

/**
 * What a failed call's status says about the connection; undefined for the statuses that are
 * the coordinator's answer to the request itself (NOT_FOUND, FAILED_PRECONDITION, …).
 */
export function diagnoseCall(
  code: number | undefined,
  details: string,
  side: ConnectionContext,
): Diagnosis | undefined {
  const { address, names } = side;
  const said = platformText(details);
  const permanent = (failure: ConnectionFailure, cause: string, fix: string): Diagnosis => ({
    failure,
    permanent: true,
    cause,
    fix,
  });
  if (code === grpc.status.UNAUTHENTICATED) {
    return permanent(
      'client-certificate',
      said,
      `give a client certificate and key issued by the coordinator's CA: ${names.clientCertificate}`,
    );
  }
  if (code === grpc.status.PERMISSION_DENIED) {
    return permanent(
      'access-denied',
      said,
      `use the certificate of an identity whose role allows it: ${names.clientCertificate}`,
    );
  }
  if (code === grpc.status.DEADLINE_EXCEEDED) {
    return {
      failure: 'timeout',
      permanent: false,
      cause: `the coordinator at ${address} did not answer in time (${said})`,
      fix: '',
    };
  }
  if (code !== grpc.status.UNAVAILABLE) return undefined;
  if (UNTRUSTED.test(said)) {
    return permanent(
      'untrusted-server',
      `the coordinator's certificate at ${address} is not trusted: it is not signed by the CA given, or not valid now (${said})`,
      `give the CA that signed the coordinator's certificate (its ca.pem): ${names.ca}`,
    );
  }
  if (SERVER_NAME.test(said)) {
    return permanent(
      'server-name',
      `the coordinator's certificate does not name ${address} (${said})`,
      `connect by a name or address the certificate carries (${names.address}), or reissue the coordinator's certificate with this one`,
    );
  }
  if (side.tls && NOT_TLS.test(said)) {
    return permanent(
      'tls-to-plaintext',
      `the coordinator at ${address} does not speak TLS (${said})`,
      `start the coordinator with TLS (--pki-dir), or connect without TLS on loopback only`,
    );
  }
  if (side.tls && CLIENT_CERT_ALERT.test(said)) {
    return permanent(
      'client-certificate',
      `the coordinator at ${address} requires a client certificate its CA issued (${said})`,
      `give a client certificate and key issued by the coordinator's CA: ${names.clientCertificate}`,
    );
  }
  if (!side.tls && PLAINTEXT_CLOSED.test(said)) {
    // A TLS server closes a plaintext HTTP/2 connection without a word: grpc-js says only "Failed to connect".
    return permanent(
      'plaintext-to-tls',
      `the connection to ${address} was plaintext (no TLS files given) and the coordinator closed it: it serves TLS (${said})`,
      `give the coordinator's CA (${names.ca}) and a client certificate (${names.clientCertificate})`,
    );
  }
  return {
    failure: 'unreachable',
    permanent: false,
    cause: `the coordinator at ${address} is unreachable (${said})`,
    fix: '',
  };
}

/** "cause; fix", for one log line or one line on stderr. */
export function describeDiagnosis(d: Diagnosis): string {
  return d.fix ? `${d.cause}; ${d.fix}` : d.cause;
}

/**
 * How the coordinator secures its socket, by configuration:
 *  - pki.dir (its own CA): TLS with its server certificate; client certificates checked against its CA,
 *    roles enforced, revocations honoured; enrolment open;
 *  - tls with clientCaFile (a CA run elsewhere): the same, without enrolment or revocation;
 *  - tls without clientCaFile: server-authenticated TLS; callers are not identified, so everything is
 *    allowed (a warning says so); off loopback only with tls.allowAnonymous (config.ts);
 *  - neither, on loopback only: plaintext; no identities, everything allowed (a warning says so).
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { isLoopbackHost, parseAddress } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';
import type { CoordinatorOptions } from '../config';
import type { MessageContext } from '../pki/authorizer';
import { Authority } from '../pki/authority';
import { ClientCheckingServerCredentials } from '../pki/server-credentials';
import { pkiFiles } from '../pki/state-dir';
import { authInterceptor } from './auth-interceptor';

export interface ServerSecurity {
  credentials: grpc.ServerCredentials;
  interceptors: grpc.ServerInterceptor[];
  /** The coordinator's CA, with pki.dir. */
  authority?: Authority;
}

export async function serverSecurity(
  options: CoordinatorOptions,
  context: MessageContext,
  log: Logger,
): Promise<ServerSecurity> {
  const { host } = parseAddress(options.listen);
  if (options.pki) {
    const files = pkiFiles(options.pki.dir);
    const authority = await Authority.open(options.pki.dir, log);
    const credentials = new ClientCheckingServerCredentials(
      fs.readFileSync(files.caCert),
      fs.readFileSync(files.serverCert),
      fs.readFileSync(files.serverKey),
    );
    log.info("serving mutual TLS with this coordinator's CA", {
      pki: options.pki.dir,
      caSha256: authority.ca.fingerprint,
    });
    return { credentials, interceptors: [authInterceptor({ log, context, authority })], authority };
  }
  if (options.tls?.clientCaFile) {
    const { certFile, keyFile, clientCaFile } = options.tls;
    const credentials = new ClientCheckingServerCredentials(
      fs.readFileSync(clientCaFile),
      fs.readFileSync(certFile),
      fs.readFileSync(keyFile),
    );
    return { credentials, interceptors: [authInterceptor({ log, context })] };
  }
  if (options.tls) {
    log.warn('serving TLS without client certificates: callers are not identified, so every call is allowed', {
      listen: options.listen,
    });
    const credentials = grpc.ServerCredentials.createSsl(null, [
      { cert_chain: fs.readFileSync(options.tls.certFile), private_key: fs.readFileSync(options.tls.keyFile) },
    ]);
    return { credentials, interceptors: [] };
  }
  if (!isLoopbackHost(host)) throw new Error(`refusing to serve ${options.listen} without TLS`);
  log.warn('serving without TLS: only processes on this machine can connect, and every call is allowed', {
    listen: options.listen,
  });
  return { credentials: grpc.ServerCredentials.createInsecure(), interceptors: [] };
}

/**
 * How the coordinator secures its socket, by configuration:
 *  - pki.dir (its own CA): TLS with its server certificate; client certificates checked against its CA,
 *    roles enforced, revocations honoured; enrolment open;
 *  - tls with clientCaFile (a CA run elsewhere): the same, without enrolment or revocation;
 *  - tls without clientCaFile: server-authenticated TLS; callers are not identified, so everything is
 *    allowed (a warning says so); off loopback only with tls.allowAnonymous (config.ts);
 *  - neither, on loopback only: plaintext; no identities, everything allowed (a warning says so).
 * With a ClientCheckingServerCredentials (the first two), `reload` (SIGHUP) serves new certificate files to
 * new connections without dropping the open ones.
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { isLoopbackHost, parseAddress } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';
import type { CoordinatorOptions } from '../config';
import type { MessageContext } from '../pki/authorizer';
import { Authority } from '../pki/authority';
import { ExpiryWatch, clientCertificatesToWatch } from '../pki/expiry-watch';
import { type ServerCertificateInfo, serverCertificateInfo } from '../pki/server-certificate';
import { ClientCheckingServerCredentials } from '../pki/server-credentials';
import { pkiFiles } from '../pki/state-dir';
import { authInterceptor } from './auth-interceptor';

export interface ServedCertificate extends ServerCertificateInfo {
  caNotAfter: number;
}

export interface ServerSecurity {
  credentials: grpc.ServerCredentials;
  interceptors: grpc.ServerInterceptor[];
  /** The coordinator's CA, with pki.dir. */
  authority?: Authority;
  /** The server certificate served to new connections, with pki.dir. */
  serverCertificate?(): ServedCertificate;
  /**
   * Reads the server certificate and key (and the client CA) again and serves them to new connections;
   * open connections keep theirs. Logs the outcome; keeps the old ones when the new files do not load.
   */
  reload(): void;
  /** Stops the expiry watch and closes the CA's store. */
  close(): void;
}

/** The PEM files a ClientCheckingServerCredentials is made of, read again on each reload. */
export function reloadable(
  files: { ca: string; cert: string; key: string },
  log: Logger,
  onLoaded: (cert: Buffer) => void,
) {
  const read = () => ({
    ca: fs.readFileSync(files.ca),
    cert: fs.readFileSync(files.cert),
    key: fs.readFileSync(files.key),
  });
  const pem = read();
  const credentials = new ClientCheckingServerCredentials(pem.ca, pem.cert, pem.key);
  onLoaded(pem.cert);
  const reload = () => {
    try {
      const next = read();
      credentials.update(next.ca, next.cert, next.key);
      onLoaded(next.cert);
    } catch (e) {
      log.error('certificates not reloaded: new connections keep the ones loaded before', {
        certFile: files.cert,
        keyFile: files.key,
        error: (e as Error).message,
      });
      return false;
    }
    return true;
  };
  return { credentials, reload };
}

/** `shared`: a cluster member's CA, opened (and closed) by the member, instead of one opened here. */
export async function serverSecurity(
  options: CoordinatorOptions,
  context: MessageContext,
  log: Logger,
  shared?: Authority,
): Promise<ServerSecurity> {
  const { host } = parseAddress(options.listen);
  const nothingToReload = () =>
    log.warn(
      'SIGHUP: nothing to reload (certificates are reloaded with pki.dir or tls.clientCaFile only); restart instead',
    );
  if (options.pki) {
    const dir = options.pki.dir;
    const files = pkiFiles(dir);
    const authority = shared ?? (await Authority.open(dir, log));
    const caNotAfter = authority.ca.cert.notAfter.getTime();
    let served!: ServedCertificate;
    const { credentials, reload } = reloadable(
      { ca: files.caCert, cert: files.serverCert, key: files.serverKey },
      log,
      (pem) => {
        const { cert: _cert, ...info } = serverCertificateInfo(pem, files.serverCert);
        served = { ...info, caNotAfter };
      },
    );
    const watch = new ExpiryWatch(
      () => [
        { what: 'server certificate', file: files.serverCert, notAfter: served.notAfter, pkiDir: dir },
        { what: 'CA certificate', file: files.caCert, notAfter: caNotAfter, pkiDir: dir },
        ...clientCertificatesToWatch(authority.list(false), dir),
      ],
      log,
    );
    log.info("serving mutual TLS with this coordinator's CA", {
      pki: dir,
      caSha256: authority.ca.fingerprint,
      serverCertificate: describeServed(served),
    });
    watch.start();
    return {
      credentials,
      interceptors: [
        authInterceptor({ log, context: { ...context, certificateOwner: (s) => authority.owner(s) }, authority }),
      ],
      authority,
      serverCertificate: () => served,
      reload() {
        if (!reload()) return;
        log.info('server certificate reloaded: new connections get it, open ones keep theirs', describeServed(served));
        watch.check();
      },
      close() {
        watch.stop();
        if (!shared) authority.close();
      },
    };
  }
  if (options.tls?.clientCaFile) {
    const { certFile, keyFile, clientCaFile } = options.tls;
    const { credentials, reload } = reloadable({ ca: clientCaFile, cert: certFile, key: keyFile }, log, () => {});
    return {
      credentials,
      interceptors: [authInterceptor({ log, context })],
      reload() {
        if (reload())
          log.info('TLS certificates reloaded: new connections get them, open ones keep theirs', { certFile });
      },
      close() {},
    };
  }
  if (options.tls) {
    log.warn('serving TLS without client certificates: callers are not identified, so every call is allowed', {
      listen: options.listen,
    });
    const credentials = grpc.ServerCredentials.createSsl(null, [
      { cert_chain: fs.readFileSync(options.tls.certFile), private_key: fs.readFileSync(options.tls.keyFile) },
    ]);
    return { credentials, interceptors: [], reload: nothingToReload, close() {} };
  }
  if (!isLoopbackHost(host)) throw new Error(`refusing to serve ${options.listen} without TLS`);
  log.warn('serving without TLS: only processes on this machine can connect, and every call is allowed', {
    listen: options.listen,
  });
  return {
    credentials: grpc.ServerCredentials.createInsecure(),
    interceptors: [],
    reload: nothingToReload,
    close() {},
  };
}

function describeServed(c: ServedCertificate) {
  return {
    serial: c.serial,
    names: [...c.dnsNames, ...c.ipAddresses].join(','),
    notAfter: new Date(c.notAfter).toISOString(),
  };
}

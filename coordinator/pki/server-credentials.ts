/**
 * TLS for the coordinator when it checks client certificates itself. The TLS handshake asks every client
 * for a certificate but lets one without (or with an unverifiable one) finish: enrolment must work
 * before a client has a certificate, and a refusal should be a logged UNAUTHENTICATED, not a handshake
 * error the client cannot explain. grpc-js then exposes only certificates that verified against `ca`
 * (getAuthContext is empty for the others), and the auth interceptor refuses every call that needs one.
 * `update` swaps the certificates for new connections (grpc-js sets the new context on its listening
 * server); connections already open keep theirs, so no session is dropped.
 */
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';

export class ClientCheckingServerCredentials extends grpc.ServerCredentials {
  constructor(ca: Buffer, certChain: Buffer, privateKey: Buffer) {
    super(
      { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
      { ca, cert: certChain, key: privateKey },
    );
  }

  /**
   * Serves these PEM contents to new connections. @throws Error (and keeps the old ones) when they do not
   * make a TLS context, e.g. a key that does not match the certificate.
   */
  update(ca: Buffer, certChain: Buffer, privateKey: Buffer): void {
    const options = { ca, cert: certChain, key: privateKey };
    tls.createSecureContext(options);
    this.updateSecureContextOptions(options);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

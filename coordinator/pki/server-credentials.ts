/**
 * TLS for the coordinator when it checks client certificates itself. The TLS handshake asks every client
 * for a certificate but lets one without (or with an unverifiable one) finish: enrolment must work
 * before a client has a certificate, and a refusal should be a logged UNAUTHENTICATED, not a handshake
 * error the client cannot explain. grpc-js then exposes only certificates that verified against `ca`
 * (getAuthContext is empty for the others), and the auth interceptor refuses every call that needs one.
 */
import * as grpc from '@grpc/grpc-js';

export class ClientCheckingServerCredentials extends grpc.ServerCredentials {
  constructor(ca: Buffer, certChain: Buffer, privateKey: Buffer) {
    super(
      { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
      { ca, cert: certChain, key: privateKey },
    );
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

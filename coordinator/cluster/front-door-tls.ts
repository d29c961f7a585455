/**
 * A member's front door with pki (docs/cluster.md): it serves mutual TLS with the coordinator's server
 * certificate, asks callers for a certificate of the cluster's CA (enrolment and health need none), names
 * each checked caller to the leader (rpc/auth-interceptor.ts's forwardedCaller), and reaches the leader over
 * mutual TLS with this member's own certificate (member.pem), read again at each new connection.
 */
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { formatAddress, parseAddress } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';
import type { Authority } from '../pki/authority';
import type { pkiFiles } from '../pki/state-dir';
import { forwardedCaller } from '../rpc/auth-interceptor';
import type { FrontDoorSecurity } from './forwarder';

type PkiFiles = ReturnType<typeof pkiFiles>;

const serverPem = (pki: PkiFiles) => ({
  ca: fs.readFileSync(pki.caCert),
  cert: fs.readFileSync(pki.serverCert),
  key: fs.readFileSync(pki.serverKey),
});

/** The front door's HTTP/2 server: TLS with the server certificate; client certificates asked for, checked per call. */
export function secureFrontDoor(pki: PkiFiles, log: Logger): { server: http2.Http2SecureServer; reload(): void } {
  // Not rejected at the handshake: an enrolling agent has no certificate yet. forwardedCaller refuses the rest.
  const server = http2.createSecureServer({ ...serverPem(pki), requestCert: true, rejectUnauthorized: false });
  return {
    server,
    reload: () => {
      try {
        server.setSecureContext(serverPem(pki));
        log.info('front door certificates reloaded: new connections get them');
      } catch (e) {
        log.error('front door certificates not reloaded: the old ones stay in use', { error: e as Error });
      }
    },
  };
}

export function tlsFrontDoorSecurity(pki: PkiFiles, authority: Authority): FrontDoorSecurity {
  return {
    connect: (address) => {
      const { host, port } = parseAddress(address);
      const secureContext = tls.createSecureContext({
        ca: fs.readFileSync(pki.caCert),
        cert: fs.readFileSync(pki.memberCert),
        key: fs.readFileSync(pki.memberKey),
      });
      // No server name for an IP (RFC 6066): the certificate is then checked against the address itself.
      const servername = net.isIP(host) ? undefined : host;
      return http2.connect(`https://${formatAddress({ host, port })}`, {
        createConnection: () => tls.connect({ host, port, secureContext, servername, ALPNProtocols: ['h2'] }),
      });
    },
    caller: (path, stream) => {
      const socket = stream.session?.socket as tls.TLSSocket | undefined;
      // Only a certificate the handshake verified against the CA names anyone.
      const cert = socket?.authorized ? socket.getPeerCertificate() : undefined;
      return forwardedCaller(path, cert && cert.raw ? cert : undefined, authority);
    },
  };
}

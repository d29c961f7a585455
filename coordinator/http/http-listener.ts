/**
 * The coordinator's HTTP listener: a table of routes (/metrics, /healthz, the dashboard's) served
 * over node:http on a loopback address, or node:https with the coordinator's server certificate elsewhere,
 * where callers must show a client certificate of its CA unless `allowAnonymous` (config.ts checks that).
 * A thin adapter: each route is a function of the request; nothing here knows what it serves.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { isLoopbackHost, parseAddress } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';
import type { CoordinatorOptions } from '../config';
import { pkiFiles } from '../pki/state-dir';

export interface HttpReply {
  status: number;
  contentType: string;
  body: string;
}

/**
 * A reply written over time (server-sent events): after the head, `open` writes to the response until the
 * caller leaves or the listener closes; it must stop writing on the response's 'close'.
 */
export interface HttpStream {
  status: number;
  contentType: string;
  open(response: http.ServerResponse): void;
}

/** Answers GET (and HEAD) of one path. A route that throws is answered 500, logged, its message kept. */
export type Route = (request: http.IncomingMessage) => HttpReply | HttpStream | Promise<HttpReply | HttpStream>;

export interface HttpListener {
  /** The address actually bound (the port filled in when 0 was asked). */
  address: string;
  /** `https` off loopback. */
  scheme: 'http' | 'https';
  /** Serves the certificate files as they are now to new connections (SIGHUP, with the gRPC side's). */
  reloadCertificates(): void;
  close(): Promise<void>;
}

/** The PEM files HTTPS serves with: the gRPC side's server certificate, and the CA its clients' come from. */
function tlsFiles(options: CoordinatorOptions): { cert: string; key: string; ca?: string } | undefined {
  if (options.pki) {
    const files = pkiFiles(options.pki.dir);
    return { cert: files.serverCert, key: files.serverKey, ca: files.caCert };
  }
  if (options.tls) return { cert: options.tls.certFile, key: options.tls.keyFile, ca: options.tls.clientCaFile };
  return undefined;
}

const text = (status: number, body: string): HttpReply => ({ status, contentType: 'text/plain; charset=utf-8', body });

/** @throws when the address cannot be bound, or the certificate files cannot be read. */
export async function startHttpListener(
  options: CoordinatorOptions,
  routes: ReadonlyMap<string, Route>,
  log: Logger,
  /** With pki.dir: whether a client certificate's serial was revoked (`headroomctl pki revoke`). */
  isRevoked: (serial: string) => boolean = () => false,
): Promise<HttpListener | undefined> {
  if (!options.http) return undefined;
  const { host, port } = parseAddress(options.http.listen);
  const files = isLoopbackHost(host) ? undefined : tlsFiles(options);
  const handle = (request: http.IncomingMessage, response: http.ServerResponse) => {
    void answer(request).then((reply) => {
      response.writeHead(reply.status, { 'content-type': reply.contentType, 'cache-control': 'no-store' });
      if (request.method !== 'HEAD' && 'open' in reply) reply.open(response);
      else response.end(request.method === 'HEAD' || 'open' in reply ? undefined : reply.body);
    });
  };
  const answer = async (request: http.IncomingMessage): Promise<HttpReply | HttpStream> => {
    // node checks the chain and validity in the handshake; revocation is the CA's own record.
    const serial = files ? (request.socket as TLSSocket).getPeerCertificate().serialNumber : undefined;
    if (serial && isRevoked(serial.toLowerCase()))
      return text(403, `certificate ${serial.toLowerCase()} was revoked\n`);
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    const route = routes.get(path);
    if (!route) return text(404, `no such page: ${path} (served: ${[...routes.keys()].join(', ')})\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD') return text(405, 'only GET and HEAD are served\n');
    try {
      return await route(request);
    } catch (e) {
      log.error('an HTTP route failed', { path, error: e as Error });
      return text(500, 'internal error: see the coordinator log\n');
    }
  };
  const read = () => {
    const f = files!;
    return {
      cert: fs.readFileSync(f.cert),
      key: fs.readFileSync(f.key),
      ...(f.ca ? { ca: fs.readFileSync(f.ca) } : {}),
    };
  };
  const server = files
    ? https.createServer({ ...read(), requestCert: true, rejectUnauthorized: !options.http.allowAnonymous }, handle)
    : http.createServer(handle);
  // A scraper that stalls must not keep a socket forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  // Every socket, to end at close: closeAllConnections() knows only those that carried an HTTP request, and
  // a TLS socket a browser opened ahead (or one mid-handshake) would keep close() waiting for good.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const address = host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`;
  return {
    address,
    scheme: files ? 'https' : 'http',
    reloadCertificates: () => {
      if (!files) return;
      try {
        (server as https.Server).setSecureContext(read());
      } catch (e) {
        log.error('HTTPS certificates not reloaded: new connections keep the ones loaded before', {
          error: (e as Error).message,
        });
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A Prometheus keeps its connection alive between scrapes; a dashboard keeps its event stream open.
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * How clients and the server talk: addresses, credentials, keepalive and deadlines, in one place so that
 * the agent, headroomctl and the coordinator agree on them.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { headroomV1 } from '../../proto';
import type { Logger } from '../util/log';
import { LeaderChannel, leaderHints } from './leader-channel';

/** The coordinator's default port. */
export const DEFAULT_PORT = 7400;
export const DEFAULT_ADDRESS = `127.0.0.1:${DEFAULT_PORT}`;

/** Deadline of every unary call: long enough for a durable commit under load, short enough to notice a dead peer. */
export const UNARY_DEADLINE_MS = 10_000;

/** Largest message either side accepts. Our messages are small; this bounds what a hostile peer can make us buffer. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

export const CLIENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Ping an idle connection every 20 s so that a dead coordinator or a dropped NAT entry is seen quickly,
  // well within a lease's default TTL of 30 s.
  'grpc.keepalive_time_ms': 20_000,
  // Declare the connection dead when a ping is not answered within 10 s.
  'grpc.keepalive_timeout_ms': 10_000,
  // Agents hold a session stream open all the time; keep pinging even between calls.
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // grpc-js records channelz statistics for every call unless told not to; nothing here serves them.
  'grpc.enable_channelz': 0,
  // Reconnect backoff: start at 1 s, cap at 10 s, so a restarted coordinator sees its agents back soon.
  'grpc.initial_reconnect_backoff_ms': 1_000,
  'grpc.max_reconnect_backoff_ms': 10_000,
};

export const SERVER_OPTIONS: grpc.ServerOptions = {
  // The server pings too, to drop sessions of guests that vanished without closing their connection.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // Accept the agents' 20 s pings without calling them abusive.
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Per-call channelz statistics for 1000 connections cost memory (about 12 MiB in bench:grant) and nothing serves them.
  'grpc.enable_channelz': 0,
};

export function deadlineIn(ms: number = UNARY_DEADLINE_MS): Date {
  return new Date(Date.now() + ms);
}

export interface Address {
  host: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port` or `host` (default port). Throws an Error naming the input when it is not one. */
export function parseAddress(input: string): Address {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(input.trim());
  if (!m) throw new Error(`not an address: "${input}" (expected host:port)`);
  const port = m[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in "${input}"`);
  return { host: m[1] ?? m[2], port };
}

/**
 * A coordinator's address, or a cluster's members' (`host:port,host:port,…`: the client fails over between
 * them). Throws an Error naming the input when one is not an address, or a list holds a name rather than an IP.
 */
export function parseCoordinators(input: string): Address[] {
  const parts = input.split(',');
  const addresses = parts.map((p) => parseAddress(p));
  if (addresses.length > 1) {
    const named = addresses.find((a) => !net.isIP(a.host));
    if (named) throw new Error(`"${named.host}" in the list "${input}": a list of members takes IP addresses`);
  }
  return addresses;
}

/** grpc-js's target for `input`: one address as it is; a list as `ipv4:` or `ipv6:` addresses, one channel over them. */
export function channelTarget(input: string): string {
  const addresses = parseCoordinators(input);
  if (addresses.length === 1) return input;
  const family = net.isIPv6(addresses[0].host) ? 'ipv6' : 'ipv4';
  return `${family}:${addresses.map(formatAddress).join(',')}`;
}

export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** True for addresses that never leave this machine: 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** PEM files for TLS. `caFile` alone gives server-authenticated TLS; with cert and key, mutual TLS. */
export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface ClientSecurity {
  tls?: TlsFiles;
  /** Plaintext on a loopback address. Refused for any other address. */
  insecure?: boolean;
  /**
   * Read the PEM files at every new connection instead of once: a certificate renewed on disk (the
   * agent's, certificate-renewer.ts) is presented from the next connection on, without a restart.
   */
  rereadFiles?: boolean;
}

/** Whether a client of `address` with `security` speaks TLS: as clientCredentials decides. */
export function usesTls(address: string, security: ClientSecurity): boolean {
  const files = security.tls ?? {};
  const remote = parseCoordinators(address).some((a) => !isLoopbackHost(a.host));
  return !security.insecure && (Boolean(files.caFile || files.certFile) || remote);
}

/**
 * Credentials for a client of `address`. Plaintext only on loopback, and then with a warning.
 * Throws when plaintext is asked for a remote address.
 */
export function clientCredentials(address: string, security: ClientSecurity, log: Logger): grpc.ChannelCredentials {
  const addresses = parseCoordinators(address);
  const { host } = addresses[0];
  const files = security.tls ?? {};
  if (!usesTls(address, security)) {
    if (addresses.some((a) => !isLoopbackHost(a.host))) {
      throw new Error(`refusing plaintext to ${address}: plaintext is allowed on loopback only; give TLS files`);
    }
    log.warn('connecting without TLS (allowed on loopback only)', { address });
    return grpc.credentials.createInsecure();
  }
  const read = (f?: string) => (f ? fs.readFileSync(f) : undefined);
  const pem = () => ({ ca: read(files.caFile), key: read(files.keyFile), cert: read(files.certFile) });
  // A list of cluster members (IP addresses, parseCoordinators): each connection is checked against the
  // address it reached, which that member's certificate names.
  const checked = addresses.length > 1 ? undefined : host;
  if (security.rereadFiles) return new ConnectorCredentials(() => tls.createSecureContext(pem()), checked);
  if (checked === undefined) {
    const context = tls.createSecureContext(pem());
    return new ConnectorCredentials(() => context, undefined);
  }
  return tlsCredentials(address, pem());
}

/** TLS credentials for a client of `address` from PEM contents; no ServerName when it is an IP address. */
export function tlsCredentials(
  address: string,
  pem: { ca?: Buffer; key?: Buffer; cert?: Buffer },
): grpc.ChannelCredentials {
  const { host } = parseAddress(address);
  const context = tls.createSecureContext(pem);
  return net.isIP(host)
    ? new ConnectorCredentials(() => context, host)
    : grpc.credentials.createFromSecureContext(context);
}

/**
 * TLS with a context made for each connection (`context` is called per handshake), to a host name or to
 * an IP address without SNI. grpc-js always sends the target's host as the TLS ServerName, and an IP there
 * is against RFC 6066 (Node warns, DEP0123, and will ignore it); without a ServerName Node checks the
 * certificate against the connected address, so its IP SANs still verify it. This is grpc-js's own secure
 * connector less the ServerName for an IP. Without `host` (a channel over a list of members' IP addresses)
 * each connection is checked against the address its socket reached.
 */
class ConnectorCredentials extends grpc.ChannelCredentials {
  constructor(
    private readonly context: () => tls.SecureContext,
    private readonly host: string | undefined,
  ) {
    super();
  }
  _isSecure(): boolean {
    return true;
  }
  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }
  _createSecureConnector(
    ...[, , callCredentials]: Parameters<grpc.ChannelCredentials['_createSecureConnector']>
  ): ReturnType<grpc.ChannelCredentials['_createSecureConnector']> {
    const { context, host } = this;
    return {
      connect: (socket) =>
        new Promise((resolve, reject) => {
          const target = host ?? socket.remoteAddress ?? '';
          const servername = net.isIP(target) ? undefined : target;
          const secureContext = context();
          const tlsSocket = tls.connect(
            { socket, secureContext, host: target, servername, ALPNProtocols: ['h2'] },
            () => {
              if (tlsSocket.authorized) resolve({ socket: tlsSocket, secure: true });
              else reject(tlsSocket.authorizationError);
            },
          );
          tlsSocket.on('error', reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials ?? grpc.credentials.createEmpty(),
      destroy: () => undefined,
    };
  }
}

export type TokenClient = InstanceType<typeof headroomV1.TokenService>;
export type AdminClient = InstanceType<typeof headroomV1.AdminService>;
export type AgentClient = InstanceType<typeof headroomV1.AgentService>;
export type PkiClient = InstanceType<typeof headroomV1.PkiService>;

export interface Clients {
  token: TokenClient;
  admin: AdminClient;
  agent: AgentClient;
  pki: PkiClient;
  /** In a cluster: the leader's address while calls go straight to it (leader-channel.ts), else undefined. */
  direct(): string | undefined;
  close(): void;
}

/** One client per service over a shared channel to the coordinator. */
/**
 * Which leader addresses a member may send a client to: an IP and port, on loopback exactly when the
 * members given are (a plaintext channel stays on loopback; TLS checks the rest), none with viaMembers.
 */
export function leaderAddressAllowed(members: string, how: ConnectHow = {}): (leader: string) => boolean {
  const loopback = parseCoordinators(members).every((a) => isLoopbackHost(a.host));
  return (leader) => {
    if (how.viaMembers) return false;
    // A port of its own: parseAddress would take the default one.
    if (!/:\d+$/.test(leader)) return false;
    let host: string;
    try {
      ({ host } = parseAddress(leader));
    } catch {
      return false;
    }
    return net.isIP(host) !== 0 && isLoopbackHost(host) === loopback;
  };
}

export interface ConnectHow {
  /** Every call through the members given, never straight to the leader they name (tests of the front doors). */
  viaMembers?: boolean;
}

export function connect(
  address: string,
  credentials: grpc.ChannelCredentials,
  extra: grpc.ChannelOptions = {},
  how: ConnectHow = {},
): Clients {
  const options = { ...CLIENT_CHANNEL_OPTIONS, ...extra };
  const target = channelTarget(address);
  const channel = new LeaderChannel(
    new grpc.Channel(target, credentials, options),
    (leader) => new grpc.Channel(leader, credentials, options),
    leaderAddressAllowed(address, how),
  );
  const shared = { ...options, channelOverride: channel, interceptors: [leaderHints(channel)] };
  const token = new headroomV1.TokenService(target, credentials, shared);
  const admin = new headroomV1.AdminService(target, credentials, shared);
  const agent = new headroomV1.AgentService(target, credentials, shared);
  const pki = new headroomV1.PkiService(target, credentials, shared);
  return { token, admin, agent, pki, direct: () => channel.direct(), close: () => token.close() };
}

/**
 * A generated client method. Typed by its last overload, `(request, callback)`, so that TypeScript infers
 * the request and response types from `client.Method.bind(client)`; called with call options too.
 */
type UnaryMethod<Req, Res> = (req: Req, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
type UnaryMethodWithOptions<Req, Res> = (
  req: Req,
  options: grpc.CallOptions,
  cb: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

/** Calls a unary method with a deadline and returns a promise. Rejects with the grpc.ServiceError. */
export function unary<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, deadlineMs = UNARY_DEADLINE_MS): Promise<Res> {
  const call = method as unknown as UnaryMethodWithOptions<Req, Res>;
  return new Promise((resolve, reject) => {
    call(req, { deadline: deadlineIn(deadlineMs) }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/**
 * A member's front door: every gRPC call it receives is passed on, as an HTTP/2 stream, to the coordination
 * the leader serves (its own or another member's) — headers (metadata, deadline), messages both ways, and
 * the trailers with the status — so a client configured with any member's address never needs to know
 * who leads. It works below gRPC on purpose: a grpc-js server and client in between halved the cluster's
 * acquire+release rate (bench:cluster), where a stream-to-stream copy costs a few percent.
 *
 * Each answer names the leader (its peer address) in a header, so that a Headroom client sends its next
 * calls there itself once it can reach it: forwarding is the way in, not the steady state.
 *
 * When the leader changes, streams still open to the old one end with UNAVAILABLE, which every Headroom
 * client retries (the same request id, the same token); while no leader is known, calls are answered
 * UNAVAILABLE at once, saying why — but a health check, which the door answers NOT_SERVING itself: the
 * truth about the coordination (issue 18), not an error a probe cannot tell from a dead member.
 */
import * as http2 from 'node:http2';
import { type ServiceDefinition, loadSync } from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { formatAddress, parseAddress } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';
import { LEADER_HEADER } from '../../common/client/leader-channel';
import { FORWARDED_FOR, FORWARDED_SERIAL } from '../rpc/auth-interceptor';

const { HTTP2_HEADER_AUTHORITY, HTTP2_HEADER_SCHEME, HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, NGHTTP2_CANCEL } =
  http2.constants;

/** gRPC's OK, UNAVAILABLE and UNAUTHENTICATED. */
const OK = '0';
const UNAVAILABLE = '14';
const UNAUTHENTICATED = '16';

const HEALTH_CHECK = '/grpc.health.v1.Health/Check';

/** Check's answer while no leader can be reached: HealthCheckResponse{NOT_SERVING} as one gRPC message. */
const NOT_SERVING_MESSAGE = grpcMessage(
  (loadSync(healthProto, { enums: String })['grpc.health.v1.Health'] as ServiceDefinition).Check.responseSerialize({
    status: 'NOT_SERVING',
  }),
);

/** How the front door trusts its callers and reaches the leader: plaintext on loopback, or mutual TLS (pki). */
export interface FrontDoorSecurity {
  /** A connection to the leader at `address`. */
  connect(address: string): http2.ClientHttp2Session;
  /** The headers that name the caller to the leader, or why it is refused (rpc/auth-interceptor.ts). */
  caller(path: string, stream: http2.ServerHttp2Stream): { headers: Record<string, string> } | { refused: Error };
}

export const PLAINTEXT: FrontDoorSecurity = {
  connect: (address) => http2.connect(`http://${formatAddress(parseAddress(address))}`),
  caller: () => ({ headers: {} }),
};

/** The forwarder's side of the leader: its address, and why there is none. */
export interface LeaderAddress {
  address(): string | undefined;
  /** Why no leader is known: said to callers. */
  absence(): string;
}

/**
 * Streams per connection to the leader before another is opened: below the leader's own cap per
 * connection (rpc/limits.ts, 256), which a busy member's agents' sessions would otherwise reach.
 */
const STREAMS_PER_UPSTREAM = 200;

interface Upstream {
  session: http2.ClientHttp2Session;
  open: Set<http2.ClientHttp2Stream>;
}

export class Forwarder {
  private target: string | undefined;
  private upstreams: Upstream[] = [];

  constructor(
    private readonly leader: LeaderAddress,
    private readonly log: Logger,
    private readonly security: FrontDoorSecurity = PLAINTEXT,
  ) {}

  /** The leader changed: streams open to the old one end with UNAVAILABLE, so that their callers ask again. */
  leaderChanged(): void {
    if (this.target === this.leader.address()) return;
    this.dropUpstreams();
  }

  close(): void {
    this.dropUpstreams();
  }

  /** The HTTP/2 server's 'stream' handler. */
  readonly onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const request: http2.OutgoingHttpHeaders = { ...headers };
    // Pseudo-headers of this hop; the leader's are set by the new request. Only this door names the caller.
    delete request[HTTP2_HEADER_AUTHORITY];
    delete request[HTTP2_HEADER_SCHEME];
    delete request[FORWARDED_FOR];
    delete request[FORWARDED_SERIAL];
    const path = String(headers[http2.constants.HTTP2_HEADER_PATH] ?? '');
    // A caller whose connection breaks (reset, killed) errors its streams: heard here, not left to crash the
    // member; the 'close' below then cancels the call at the leader.
    stream.on('error', (error) => this.log.debug('a call through the front door broke', { method: path, error }));
    const caller = this.security.caller(path, stream);
    if ('refused' in caller) {
      this.log.warn('call refused', { method: path, code: 'UNAUTHENTICATED', reason: caller.refused.message });
      return this.answer(stream, UNAUTHENTICATED, caller.refused.message);
    }
    Object.assign(request, caller.headers);
    const upstream = this.upstream();
    if (!upstream) return this.refuse(stream, path, this.leader.absence());
    let forward: http2.ClientHttp2Stream;
    try {
      forward = upstream.session.request(request);
    } catch (e) {
      return this.refuse(
        stream,
        path,
        `the cluster leader cannot be reached (${(e as Error).message}); ${this.leader.absence()}`,
      );
    }
    upstream.open.add(forward);
    let trailers: http2.OutgoingHttpHeaders | undefined;
    let answered = false;
    // Set once the caller has its status, or no longer listens.
    let done = false;
    let failure: string | undefined;
    const leader = this.target;
    forward.on('response', (received) => {
      answered = true;
      if (stream.destroyed) return;
      // Named to the caller, whose next calls go straight to the leader (common/client/leader-channel.ts).
      const responseHeaders: http2.OutgoingHttpHeaders = leader ? { ...received, [LEADER_HEADER]: leader } : received;
      // A trailers-only answer (an error before any message) comes as one HEADERS frame: pass it as it is.
      if (responseHeaders['grpc-status'] !== undefined) {
        done = true;
        return stream.respond(responseHeaders, { endStream: true });
      }
      // Only on a call the leader answered: a refused one (below) sends trailers of its own.
      stream.on('wantTrailers', () => {
        done = true;
        stream.sendTrailers(trailers ?? status(UNAVAILABLE, 'the cluster leader ended the call without a status'));
      });
      stream.respond(responseHeaders, { waitForTrailers: true });
      forward.pipe(stream);
    });
    forward.on('trailers', (t) => (trailers = t));
    stream.pipe(forward);
    // The leader known last is gone (it stepped down or died, while etcd cannot yet say who leads): say why.
    forward.on('error', (error: Error) => {
      failure = `the cluster leader known last (${this.target ?? 'none'}) cannot be reached (${error.message}); ${this.leader.absence()}`;
    });
    forward.on('close', () => {
      upstream.open.delete(forward);
      if (done || stream.destroyed || stream.writableEnded) return;
      // Cut by leaderChanged(), or the connection to the leader broke: the caller asks again.
      const why =
        failure ??
        (forward.rstCode === NGHTTP2_CANCEL
          ? 'the cluster leader changed during the call: call again'
          : 'the connection to the cluster leader was lost: call again');
      if (!answered) return this.refuse(stream, path, why);
      trailers = status(UNAVAILABLE, why);
      stream.end();
    });
    // The caller went away (cancelled, deadline): so does the call at the leader.
    stream.on('close', () => {
      done = true;
      if (!forward.closed) forward.close(NGHTTP2_CANCEL);
    });
  };

  /**
   * A call no leader can answer: a trailers-only UNAVAILABLE, as gRPC servers answer a call they cannot
   * serve; a health check is answered NOT_SERVING (status OK), since that is what a probe asks.
   */
  private refuse(stream: http2.ServerHttp2Stream, path: string, message: string): void {
    if (path !== HEALTH_CHECK) return this.answer(stream, UNAVAILABLE, message);
    if (stream.destroyed || stream.headersSent) return;
    this.log.debug('health check answered NOT_SERVING', { reason: message });
    stream.respond(
      { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': OK }));
    stream.end(NOT_SERVING_MESSAGE);
  }

  /** A trailers-only answer: the status alone. */
  private answer(stream: http2.ServerHttp2Stream, code: string, message: string): void {
    if (stream.destroyed || stream.headersSent) return;
    stream.respond(
      { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc', ...status(code, message) },
      { endStream: true },
    );
  }

  /** A connection to the leader with room for one more stream, opened as needed. */
  private upstream(): Upstream | undefined {
    const address = this.leader.address();
    if (!address) return undefined;
    if (address !== this.target) {
      this.dropUpstreams();
      this.target = address;
    }
    this.upstreams = this.upstreams.filter((u) => !u.session.closed && !u.session.destroyed);
    const roomy = this.upstreams.find((u) => u.open.size < STREAMS_PER_UPSTREAM);
    if (roomy) return roomy;
    const session = this.security.connect(address);
    session.on('error', (error) => this.log.debug('the connection to the cluster leader failed', { address, error }));
    const upstream = { session, open: new Set<http2.ClientHttp2Stream>() };
    this.upstreams.push(upstream);
    return upstream;
  }

  private dropUpstreams(): void {
    const old = this.upstreams;
    this.upstreams = [];
    this.target = undefined;
    for (const u of old) {
      for (const s of u.open) s.close(NGHTTP2_CANCEL);
      u.session.close();
    }
  }
}

/** A gRPC length-prefixed message: not compressed, its length, its bytes. */
function grpcMessage(bytes: Buffer): Buffer {
  const framed = Buffer.alloc(5 + bytes.length);
  framed.writeUInt32BE(bytes.length, 1);
  bytes.copy(framed, 5);
  return framed;
}

/** gRPC status trailers: the message percent-encoded as the protocol asks (only '%' and what is not printable ASCII). */
function status(code: string, message: string): http2.OutgoingHttpHeaders {
  return { 'grpc-status': code, 'grpc-message': message.replace(/[^\x20-\x24\x26-\x7e]/gu, encodeURIComponent) };
}

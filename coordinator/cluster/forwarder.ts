/**
 * A member's front door: every call of the Headroom services is passed, as bytes, to the coordination the
 * leader serves (its own or another member's), and the answer back — unary calls and streams alike, with
 * their metadata, deadline and status. So a client configured with any member's address never needs to
 * know who leads. When the leader changes, calls still open to the old one end with UNAVAILABLE, which
 * every Headroom client retries (the same request id, the same token); while no leader is known, calls
 * are answered UNAVAILABLE at once, saying why.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_CHANNEL_OPTIONS } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';

const bytes = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

/** The forwarder's side of the leader: its address, and why there is none. */
export interface LeaderAddress {
  address(): string | undefined;
  /** Why no leader is known: said to callers. */
  absence(): string;
}

/** Keepalive towards the leader: a hung leader's calls fail in seconds, not at the callers' deadlines. */
const UPSTREAM_OPTIONS: grpc.ChannelOptions = {
  ...CLIENT_CHANNEL_OPTIONS,
  'grpc.keepalive_time_ms': 2_000,
  'grpc.keepalive_timeout_ms': 2_000,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 1_000,
};

type Open = { cancel(): void };

export class Forwarder {
  private upstream: { address: string; client: grpc.Client; open: Set<Open> } | undefined;

  constructor(
    private readonly leader: LeaderAddress,
    private readonly log: Logger,
    /** How to reach the leader at `address`: mutual TLS with the member's certificate, or plaintext on loopback. */
    private readonly credentials: (address: string) => grpc.ChannelCredentials,
  ) {}

  /** The leader changed: calls open to the old one end with UNAVAILABLE, so that their callers ask again. */
  leaderChanged(): void {
    const old = this.upstream;
    if (!old || old.address === this.leader.address()) return;
    this.upstream = undefined;
    for (const call of old.open) call.cancel();
    old.client.close();
  }

  close(): void {
    const old = this.upstream;
    this.upstream = undefined;
    if (!old) return;
    for (const call of old.open) call.cancel();
    old.client.close();
  }

  /** A service definition and handlers that forward each of `service`'s methods. */
  service(service: grpc.ServiceDefinition): {
    definition: grpc.ServiceDefinition;
    handlers: grpc.UntypedServiceImplementation;
  } {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(service)) {
      definition[name] = {
        ...method,
        requestSerialize: bytes.serialize,
        requestDeserialize: bytes.deserialize,
        responseSerialize: bytes.serialize,
        responseDeserialize: bytes.deserialize,
      };
      handlers[name] = method.requestStream
        ? (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.bidi(method.path, call)
        : method.responseStream
          ? (call: grpc.ServerWritableStream<Buffer, Buffer>) => this.serverStream(method.path, call)
          : (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
              this.unary(method.path, call, callback);
    }
    return { definition, handlers };
  }

  private client(): { client: grpc.Client; open: Set<Open> } | undefined {
    const address = this.leader.address();
    if (!address) return undefined;
    if (this.upstream?.address !== address) {
      this.leaderChanged();
      this.upstream = {
        address,
        client: new grpc.Client(address, this.credentials(address), UPSTREAM_OPTIONS),
        open: new Set(),
      };
    }
    return this.upstream;
  }

  private noLeader(): grpc.StatusObject {
    return { code: grpc.status.UNAVAILABLE, details: this.leader.absence(), metadata: new grpc.Metadata() };
  }

  private options(call: { getDeadline(): grpc.Deadline }): grpc.CallOptions {
    const deadline = call.getDeadline();
    return deadline === Infinity ? {} : { deadline };
  }

  /** Tracks a call to the leader until it ends, so that a change of leader can end it. */
  private track(up: { open: Set<Open> }, call: Open): () => void {
    up.open.add(call);
    return () => up.open.delete(call);
  }

  private unary(path: string, call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    const up = this.client();
    if (!up) return callback(this.noLeader());
    let untrack = () => {};
    const upstream = up.client.makeUnaryRequest(
      path,
      bytes.serialize,
      bytes.deserialize,
      call.request,
      call.metadata,
      this.options(call),
      (error, response) => {
        untrack();
        if (error) callback(this.translated(error));
        else callback(null, response);
      },
    );
    untrack = this.track(up, upstream);
    call.on('cancelled', () => upstream.cancel());
  }

  private serverStream(path: string, call: grpc.ServerWritableStream<Buffer, Buffer>): void {
    const up = this.client();
    if (!up) return void call.emit('error', this.noLeader());
    const upstream = up.client.makeServerStreamRequest(
      path,
      bytes.serialize,
      bytes.deserialize,
      call.request,
      call.metadata,
      this.options(call),
    );
    this.pipeResponses(up, upstream, call);
  }

  private bidi(path: string, call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const up = this.client();
    if (!up) return void call.emit('error', this.noLeader());
    const upstream = up.client.makeBidiStreamRequest(
      path,
      bytes.serialize,
      bytes.deserialize,
      call.metadata,
      this.options(call),
    );
    call.on('data', (message: Buffer) => {
      // The leader's side reads what it can; past its buffer the caller waits, as it would on the leader.
      if (!upstream.write(message)) call.pause();
    });
    upstream.on('drain', () => call.resume());
    call.on('end', () => upstream.end());
    this.pipeResponses(up, upstream, call);
  }

  /** The leader's messages and status to the caller; the caller's cancellation to the leader. */
  private pipeResponses(
    up: { open: Set<Open> },
    upstream: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>,
    call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>,
  ): void {
    const untrack = this.track(up, upstream);
    let ended = false;
    upstream.on('metadata', (metadata) => call.sendMetadata(metadata));
    upstream.on('data', (message: Buffer) => {
      if (!call.write(message)) upstream.pause();
    });
    call.on('drain', () => upstream.resume());
    upstream.on('error', (error: grpc.ServiceError) => {
      untrack();
      if (ended) return;
      ended = true;
      call.emit('error', this.translated(error));
    });
    upstream.on('status', (status: grpc.StatusObject) => {
      untrack();
      if (ended || status.code !== grpc.status.OK) return;
      ended = true;
      call.end(status.metadata);
    });
    call.on('cancelled', () => {
      ended = true;
      untrack();
      upstream.cancel();
    });
  }

  /** A call the forwarder cut because the leader changed is UNAVAILABLE, which callers retry; the rest as they came. */
  private translated(error: grpc.ServiceError): Partial<grpc.StatusObject> {
    if (error.code === grpc.status.CANCELLED) {
      this.log.debug('a forwarded call was cut: the leader changed');
      return {
        code: grpc.status.UNAVAILABLE,
        details: 'the cluster leader changed during the call: call again',
        metadata: error.metadata,
      };
    }
    return { code: error.code, details: error.details, metadata: error.metadata };
  }
}

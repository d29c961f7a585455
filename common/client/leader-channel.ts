/**
 * A client's channel to a cluster (docs/cluster.md) that goes straight to the leader. Every member's front
 * door forwards calls to the leader and names it in the response headers (`headroom-leader`: the leader's
 * peer address); once a member has named it, calls go over a channel of their own to that address as soon
 * as it is connected: one hop, and no member copying every message. Forwarding alone cost a third of the
 * cluster's acquire+release rate (bench:cluster).
 *
 * Until that channel is ready, and again once it breaks (the leader died or stepped down) or when the
 * peer address cannot be reached from here (a cluster network of its own), calls go through the members
 * as before, which name the leader they know; an address whose connection failed is not tried again for a
 * minute, so that a firewalled peer port costs nothing but the forwarding.
 */
import * as grpc from '@grpc/grpc-js';

/** The response header in which a member's front door names the leader it forwarded to. */
export const LEADER_HEADER = 'headroom-leader';

/** How long an address whose connection failed is not tried again. */
export const UNREACHABLE_RETRY_MS = 60_000;

/** Re-arms the connectivity watch this often when nothing changes (grpc-js needs a finite deadline). */
const WATCH_DEADLINE_MS = 3_600_000;

const { READY, IDLE, TRANSIENT_FAILURE, SHUTDOWN } = grpc.connectivityState;

interface Leader {
  address: string;
  channel: grpc.ChannelInterface;
  /** It has been READY: until then, calls do not wait for its connection. */
  ready: boolean;
}

export class LeaderChannel implements grpc.ChannelInterface {
  private leader: Leader | undefined;
  private readonly unreachable = new Map<string, number>();

  constructor(
    private readonly members: grpc.ChannelInterface,
    /** A channel to one address, with the members' credentials and options. */
    private readonly open: (address: string) => grpc.ChannelInterface,
    /** Whether a named address may be used (a plaintext channel over loopback stays on loopback). */
    private readonly acceptable: (address: string) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** The leader's address while calls go straight to it, else undefined (they go through the members). */
  direct(): string | undefined {
    const leader = this.leader;
    if (!leader?.ready) return undefined;
    const state = leader.channel.getConnectivityState(false);
    return state === READY || state === IDLE ? leader.address : undefined;
  }

  /** A member named the leader. */
  named(address: string): void {
    if (this.leader?.address === address || !this.acceptable(address)) return;
    if ((this.unreachable.get(address) ?? 0) > this.now()) return;
    this.drop();
    const leader: Leader = { address, channel: this.open(address), ready: false };
    this.leader = leader;
    this.follow(leader, leader.channel.getConnectivityState(true));
  }

  private follow(leader: Leader, state: grpc.connectivityState): void {
    if (this.leader !== leader || state === SHUTDOWN) return;
    if (state === READY) leader.ready = true;
    if (state === TRANSIENT_FAILURE) {
      this.unreachable.set(leader.address, this.now() + UNREACHABLE_RETRY_MS);
      this.drop();
      return;
    }
    leader.channel.watchConnectivityState(state, Date.now() + WATCH_DEADLINE_MS, () =>
      this.follow(leader, leader.channel.getConnectivityState(false)),
    );
  }

  private drop(): void {
    const old = this.leader;
    this.leader = undefined;
    old?.channel.close();
  }

  createCall(
    ...args: Parameters<grpc.ChannelInterface['createCall']>
  ): ReturnType<grpc.ChannelInterface['createCall']> {
    const channel = this.direct() !== undefined ? this.leader!.channel : this.members;
    return channel.createCall(...args);
  }

  close(): void {
    this.drop();
    this.members.close();
  }

  getTarget(): string {
    return this.members.getTarget();
  }

  getConnectivityState(tryToConnect: boolean): grpc.connectivityState {
    return this.members.getConnectivityState(tryToConnect);
  }

  watchConnectivityState(...args: Parameters<grpc.ChannelInterface['watchConnectivityState']>): void {
    this.members.watchConnectivityState(...args);
  }

  getChannelzRef(): ReturnType<grpc.ChannelInterface['getChannelzRef']> {
    return this.members.getChannelzRef();
  }
}

/** Tells the channel every leader a member's answer names. */
export function leaderHints(channel: LeaderChannel): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) =>
        next(metadata, {
          onReceiveMetadata: (received, pass) => {
            const [leader] = received.get(LEADER_HEADER);
            if (leader) channel.named(String(leader));
            pass(received);
          },
        }),
    });
}

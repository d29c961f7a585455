import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { LeaderChannel, UNREACHABLE_RETRY_MS } from '../../../../common/client/leader-channel';

const { IDLE, CONNECTING, READY, TRANSIENT_FAILURE } = grpc.connectivityState;

/** A channel whose state the test sets; createCall answers its name, so the test sees where a call went. */
class FakeChannel {
  state: grpc.connectivityState = IDLE;
  closed = false;
  private watchers: (() => void)[] = [];
  constructor(readonly name: string) {}
  set(state: grpc.connectivityState): void {
    this.state = state;
    const w = this.watchers;
    this.watchers = [];
    w.forEach((f) => f());
  }
  getConnectivityState(tryToConnect: boolean): grpc.connectivityState {
    if (tryToConnect && this.state === IDLE) this.state = CONNECTING;
    return this.state;
  }
  watchConnectivityState(_s: grpc.connectivityState, _d: Date | number, cb: () => void): void {
    this.watchers.push(cb);
  }
  createCall(): string {
    return this.name;
  }
  close(): void {
    this.closed = true;
  }
  getTarget(): string {
    return this.name;
  }
  getChannelzRef(): undefined {
    return undefined;
  }
}

function setup(acceptable = (_a: string) => true) {
  let now = 1_000_000;
  const members = new FakeChannel('members');
  const opened = new Map<string, FakeChannel>();
  const channel = new LeaderChannel(
    members as unknown as grpc.ChannelInterface,
    (address) => {
      const c = new FakeChannel(address);
      opened.set(address, c);
      return c as unknown as grpc.ChannelInterface;
    },
    acceptable,
    () => now,
  );
  const callGoesTo = () => (channel.createCall as unknown as () => string)();
  return { channel, members, opened, callGoesTo, advance: (ms: number) => (now += ms) };
}

describe('LeaderChannel', () => {
  it('goes through the members until the named leader is connected, then straight to it', () => {
    const { channel, opened, callGoesTo } = setup();
    assert.equal(callGoesTo(), 'members');
    channel.named('10.0.0.2:7410');
    const leader = opened.get('10.0.0.2:7410')!;
    assert.equal(leader.state, CONNECTING, 'it starts connecting at once');
    assert.equal(callGoesTo(), 'members', 'calls do not wait for the connection');
    leader.set(READY);
    assert.equal(callGoesTo(), '10.0.0.2:7410');
    assert.equal(channel.direct(), '10.0.0.2:7410');
    // Idle after a quiet while: the next call reconnects it.
    leader.set(IDLE);
    assert.equal(callGoesTo(), '10.0.0.2:7410');
  });

  it('falls back to the members when the connection fails, and tries that address again only after a while', () => {
    const { channel, opened, callGoesTo, advance } = setup();
    channel.named('10.0.0.2:7410');
    const first = opened.get('10.0.0.2:7410')!;
    first.set(READY);
    first.set(TRANSIENT_FAILURE);
    assert.equal(callGoesTo(), 'members');
    assert.equal(first.closed, true);
    assert.equal(channel.direct(), undefined);
    opened.clear();
    channel.named('10.0.0.2:7410');
    assert.equal(opened.size, 0, 'not again within the minute');
    advance(UNREACHABLE_RETRY_MS + 1);
    channel.named('10.0.0.2:7410');
    assert.equal(opened.size, 1);
  });

  it('moves to a newly named leader, closing the channel to the old one', () => {
    const { channel, opened, callGoesTo } = setup();
    channel.named('10.0.0.2:7410');
    opened.get('10.0.0.2:7410')!.set(READY);
    channel.named('10.0.0.2:7410');
    assert.equal(opened.size, 1, 'the same leader again opens nothing');
    channel.named('10.0.0.3:7410');
    assert.equal(opened.get('10.0.0.2:7410')!.closed, true);
    assert.equal(callGoesTo(), 'members');
    opened.get('10.0.0.3:7410')!.set(READY);
    assert.equal(callGoesTo(), '10.0.0.3:7410');
  });

  it('ignores an address it may not use, and closes everything on close', () => {
    const { channel, members, opened } = setup((a) => a.startsWith('127.'));
    channel.named('10.0.0.2:7410');
    assert.equal(opened.size, 0);
    channel.named('127.0.0.1:7410');
    channel.close();
    assert.equal(opened.get('127.0.0.1:7410')!.closed, true);
    assert.equal(members.closed, true);
  });
});

/**
 * The front door's forwarder (coordinator/cluster/forwarder.ts) between real HTTP/2 connections: a caller
 * whose connection is reset mid-call (a host-backup child killed by a cancel) neither crashes the member
 * nor leaves its call open at the leader, and the door goes on serving.
 */
import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Forwarder } from '../../../coordinator/cluster/forwarder';
import { createLogger } from '../../../common/util/log';
import { waitFor } from '../../helpers/wait';

async function listen(server: http2.Http2Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

describe('cluster front door: forwarding', () => {
  const closers: (() => void)[] = [];
  afterEach(() => closers.splice(0).forEach((close) => close()));

  it('survives a caller whose connection is reset mid-call, and cancels that call at the leader', async () => {
    // The leader: holds every call open until the caller goes, and counts the calls it has open.
    const leader = http2.createServer();
    const open = new Set<http2.ServerHttp2Stream>();
    leader.on('stream', (stream) => {
      open.add(stream);
      stream.on('close', () => open.delete(stream));
      stream.on('error', () => {});
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    });
    const leaderPort = await listen(leader);
    const forwarder = new Forwarder(
      { address: () => `127.0.0.1:${leaderPort}`, absence: () => 'no leader' },
      createLogger({ level: 'silent' }),
    );
    const door = http2.createServer();
    door.on('stream', forwarder.onStream);
    const doorPort = await listen(door);
    closers.push(
      () => forwarder.close(),
      () => door.close(),
      () => leader.close(),
    );

    // A caller on a socket of its own, so that it can be reset as a killed process's would be.
    let socket: net.Socket | undefined;
    const caller = http2.connect(`http://127.0.0.1:${doorPort}`, {
      createConnection: () => (socket = net.connect(doorPort, '127.0.0.1')),
    });
    caller.on('error', () => {});
    const call = caller.request({ ':method': 'POST', ':path': '/headroom.v1.TokenService/Session' });
    call.on('error', () => {});
    await waitFor(async () => open.size === 1, 10_000, 'the call reached the leader');
    socket!.resetAndDestroy();

    await waitFor(async () => open.size === 0, 10_000, 'the call was cancelled at the leader');
    // And the door still serves: a new caller's call reaches the leader.
    const next = http2.connect(`http://127.0.0.1:${doorPort}`);
    closers.push(() => next.destroy());
    const again = next.request({ ':method': 'POST', ':path': '/headroom.v1.TokenService/Session' });
    again.on('error', () => {});
    const answered = await new Promise<http2.IncomingHttpHeaders>((resolve) => again.once('response', resolve));
    assert.equal(answered[':status'], 200);
    assert.equal(open.size, 1);
  });
});

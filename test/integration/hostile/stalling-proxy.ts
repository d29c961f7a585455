/**
 * A TCP proxy on loopback that can stop passing the server's bytes to the client: a reader stalled at the
 * network, as a hung process or a congested link looks to the server. (A grpc-js client that merely does
 * not read a stream still takes its bytes off the socket, so it shows the server no backpressure.)
 */
import * as net from 'node:net';

export interface StallingProxy {
  address: string;
  /** Stops reading what the server sends; what it sent already stays in the socket buffers. */
  stall(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function stallingProxy(target: string): Promise<StallingProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const upstreams = new Map<net.Socket, net.Socket>(); // upstream -> its client
  let stalled = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    upstreams.set(upstream, client);
    client.pipe(upstream);
    if (!stalled) upstream.pipe(client);
    const drop = () => {
      upstreams.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${own}`,
    stall: () => {
      stalled = true;
      // Unpiped as well as paused: a pipe resumes its source on the destination's next 'drain'.
      for (const u of upstreams.keys()) {
        u.unpipe();
        u.pause();
      }
    },
    resume: () => {
      stalled = false;
      for (const [u, client] of upstreams) u.pipe(client);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const u of upstreams.keys()) u.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Free TCP ports on loopback, for processes that must be started, killed and started again on the same
 * address (etcd members, cluster members that clients list by address).
 */
import * as net from 'node:net';

/** `count` distinct ports that were free on 127.0.0.1 a moment ago (all bound at once, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * A process for the network namespace test to run inside a namespace (test/helpers/netns.ts): it writes
 * to etcd through the endpoints it is given, one put at a time, and prints one line per put, `ok N` or
 * `error N MESSAGE`; and it serves TCP on its namespace's address, so the test can see whether the
 * namespace is reachable from outside too. Prints `listening on ADDRESS:PORT` first. Runs until killed.
 *
 * Usage: etcd-probe.js LISTEN_ADDRESS ENDPOINT...
 */
import * as net from 'node:net';
import { Etcd3 } from 'etcd3';

/** Each put's own deadline, ms: long enough for a busy machine, short enough that a cut shows at once. */
const PUT_DEADLINE_MS = 2_000;

async function main(): Promise<void> {
  const [address, ...endpoints] = process.argv.slice(2);
  const server = net.createServer((socket) => socket.end('probe\n'));
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  process.stdout.write(`listening on ${address}:${(server.address() as net.AddressInfo).port}\n`);
  const client = new Etcd3({ hosts: endpoints });
  for (let n = 1; ; n++) {
    try {
      await client
        .put(`probe/${process.pid}`)
        .value(String(n))
        .options({ deadline: Date.now() + PUT_DEADLINE_MS });
      process.stdout.write(`ok ${n}\n`);
    } catch (e) {
      process.stdout.write(`error ${n} ${(e as Error).message.split('\n')[0]}\n`);
      // A failed put can return at once (an open circuit breaker): do not spin.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

main().catch((e) => {
  process.stderr.write(`etcd probe: ${(e as Error).message}\n`);
  process.exit(1);
});

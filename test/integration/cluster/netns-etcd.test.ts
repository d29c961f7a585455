/**
 * A process in a network namespace (test/helpers/netns.ts) against the etcd cluster helper, as a cluster
 * member cut off from etcd and its peers will be: etcd also listens on the veth's host-side address, the
 * process writes to etcd through it and serves on its own side, and the link is cut and restored. Needs
 * root (ip netns): skipped, saying so, when not root; as root a namespace that cannot be made fails it.
 */
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { type EtcdCluster, startEtcdCluster } from '../../helpers/etcd-cluster';
import { createPartition, needsNamespaces, type Partition } from '../../helpers/netns';
import { waitFor } from '../../helpers/wait';

const PROBE = path.join(__dirname, 'etcd-probe.js');

/** Whether a TCP connection to host:port gets the probe's greeting within `timeoutMs`. */
function reachable(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('data', (d) => done(d.toString() === 'probe\n'));
    socket.once('error', () => done(false));
  });
}

describe('a process in a network namespace reaching the etcd cluster (netns + etcd-cluster helpers)', function () {
  this.timeout(120_000);
  let partition: Partition | undefined;
  let cluster: EtcdCluster | undefined;
  let probe: ChildProcess | undefined;

  before(needsNamespaces);

  after(async () => {
    probe?.kill('SIGKILL');
    await cluster?.cleanup();
    partition?.remove();
  });

  it('reaches etcd and is reachable while the link is up, neither after cut(), both again after restore()', async () => {
    partition = createPartition();
    cluster = await startEtcdCluster({ extraClientAddresses: [partition.hostAddress] });
    probe = partition.spawn(
      process.execPath,
      [PROBE, partition.peerAddress, ...cluster.endpointsOn(partition.hostAddress)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    let stderr = '';
    createInterface({ input: probe.stdout! }).on('line', (l) => lines.push(l));
    probe.stderr!.on('data', (d: Buffer) => (stderr += d));
    /** The first line after index `from` that matches, once there is one. */
    const nextLine = async (from: number, pattern: RegExp, what: string) => {
      let found = -1;
      await waitFor(
        () => {
          if (probe!.exitCode !== null) throw new Error(`the probe exited (${probe!.exitCode}): ${stderr}`);
          found = lines.findIndex((l, i) => i >= from && pattern.test(l));
          return found >= 0;
        },
        60_000,
        `${what} (probe output: ${lines.slice(-5).join(' | ')})`,
      );
      return found;
    };

    const listening = lines[await nextLine(0, /^listening on /, 'the probe listening')];
    const port = Number(/:(\d+)$/.exec(listening)![1]);
    await nextLine(0, /^ok /, 'a write to etcd from inside the namespace');
    assert.ok(await reachable(partition.peerAddress, port, 5_000), 'the namespace is reachable from outside');

    const cutAt = Date.now();
    partition.cut();
    const firstError = await nextLine(lines.length, /^error /, 'a failed write after the cut');
    const failedAfterMs = Date.now() - cutAt;
    // A put that was on its way before the cut may still end well; none after the first failure.
    await waitFor(() => lines.length >= firstError + 3, 60_000, 'two more writes tried while cut off');
    assert.deepEqual(
      lines.slice(firstError).filter((l) => !l.startsWith('error ')),
      [],
      'no write got through while cut off',
    );
    assert.equal(await reachable(partition.peerAddress, port, 2_000), false, 'nothing reaches the namespace');
    // etcd itself never noticed: the cut is between the namespace and everything else.
    await cluster.waitHealthy();

    const restoredAt = Date.now();
    partition.restore();
    await nextLine(lines.length, /^ok /, 'a write to etcd once the link is back');
    // How long an etcd3 client takes to notice either way: what a cluster member cut off will see.
    console.log(
      `      first failed write ${failedAfterMs} ms after the cut, first write through ${Date.now() - restoredAt} ms after restore`,
    );
    assert.ok(await reachable(partition.peerAddress, port, 5_000), 'the namespace is reachable again');
  });
});

/**
 * Network namespaces for tests, made with iproute2: a namespace joined to this one by a veth pair (a
 * point-to-point /30 in 10.77.x.0), whose link can be cut and restored, and processes run inside it. A
 * partition (an agent or a cluster member cut off from the rest), or a listener off loopback that is still
 * on no real network. Needs root (CAP_NET_ADMIN). A namespace is deleted at exit even if the test is not.
 */
import { type ChildProcess, type SpawnOptions, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { reapAtExit } from './reaper';
import { isRoot, requireTool } from './require-tool';

/**
 * A `before` hook of a suite that makes network namespaces: skipped, saying why, without root; failing,
 * naming the Debian package, without `ip`.
 */
export function needsNamespaces(this: Mocha.Context): void {
  if (!isRoot()) {
    console.log('      skipped: network namespaces need root');
    this.skip();
  }
  requireTool('ip', 'iproute2');
}

export interface Partition {
  /** The namespace's name, for `ip netns exec NAME …`. */
  namespace: string;
  /** This side's address (the root namespace), reachable from the namespace while the link is up. */
  hostAddress: string;
  /** The namespace's address. */
  peerAddress: string;
  /**
   * Runs `command` inside the namespace. `ip netns exec` execs it, so the child's pid is the command's own
   * and signals (SIGKILL, SIGSTOP) reach it directly. It is SIGKILLed at exit if still running. Inside, it
   * reaches this side at hostAddress only (a listener on 127.0.0.1 here is out of its reach); from this
   * side, it is reached at peerAddress.
   */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /**
   * Takes the namespace's end of the link down: its packets go nowhere and none reach it, with no reset.
   * Connections stay open on both sides, as in a real partition, until their own timeouts end them.
   */
  cut(): void;
  restore(): void;
  /** Deletes the namespace (and with it the veth pair). Safe to call twice. */
  remove(): void;
}

/** The command line that runs `command args` inside `namespace`: `ip netns exec` execs it, keeping its pid. */
export function inNamespace(namespace: string, command: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', namespace, command, ...args]];
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** A third octet of 10.77.x.0 that no address of this namespace has: concurrent test files pick apart. */
function freeSubnet(): number {
  const addresses = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  const used = new Set([...addresses.matchAll(/inet 10\.77\.(\d+)\./g)].map((m) => Number(m[1])));
  const free = Array.from({ length: 254 }, (_, i) => i + 1).filter((n) => !used.has(n));
  if (free.length === 0) throw new Error('no free subnet in 10.77.0.0/16: stale namespaces? (ip netns list)');
  return free[randomInt(free.length)];
}

/**
 * Creates namespace `hr-<tag>` linked to this one; `subnet` is the /30's third octet in 10.77.x.0 (by
 * default one no address uses yet). A tag is at most 11 characters (interface names are at most 15).
 */
export function createPartition(tag = randomBytes(3).toString('hex'), subnet = freeSubnet()): Partition {
  const namespace = `hr-${tag}`;
  const [outside, inside] = [`hr${tag}o`.slice(0, 15), `hr${tag}i`.slice(0, 15)];
  const [hostAddress, peerAddress] = [`10.77.${subnet}.1`, `10.77.${subnet}.2`];
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    unregister();
    try {
      ip('netns', 'del', namespace);
    } catch {
      // Already gone.
    }
    try {
      ip('link', 'del', outside);
    } catch {
      // Deleted with the namespace's end.
    }
  };
  const unregister = reapAtExit(remove);
  try {
    ip('netns', 'add', namespace);
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
    ip('link', 'set', inside, 'netns', namespace);
    ip('addr', 'add', `${hostAddress}/30`, 'dev', outside);
    ip('link', 'set', outside, 'up');
    ip('netns', 'exec', namespace, 'ip', 'addr', 'add', `${peerAddress}/30`, 'dev', inside);
    ip('netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'up');
    ip('netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    remove();
    throw e;
  }
  return {
    namespace,
    hostAddress,
    peerAddress,
    spawn: (command, args, options = {}) => {
      const child = spawn(...inNamespace(namespace, command, args), options);
      // Deleting the namespace does not end what runs in it.
      child.once(
        'exit',
        reapAtExit(() => child.kill('SIGKILL')),
      );
      return child;
    },
    cut: () => ip('netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'down'),
    restore: () => ip('netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'up'),
    remove,
  };
}

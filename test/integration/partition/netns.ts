/**
 * A network partition for tests, made with iproute2: a network namespace joined to this one by a veth
 * pair (a point-to-point /30), whose link can be cut and restored. Needs root (CAP_NET_ADMIN).
 */
import { execFileSync } from 'node:child_process';

export interface Partition {
  /** The namespace's name, for `ip netns exec NAME …`. */
  namespace: string;
  /** This side's address (the root namespace), reachable from the namespace while the link is up. */
  hostAddress: string;
  /** The namespace's address. */
  peerAddress: string;
  /** Takes the namespace's end of the link down: its packets go nowhere and none reach it, with no reset. */
  cut(): void;
  restore(): void;
  /** Deletes the namespace (and with it the veth pair). Safe to call twice. */
  remove(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** Creates namespace `hr-<tag>` linked to this one; `subnet` is the /30's third octet in 10.77.x.0. */
export function createPartition(tag: string, subnet: number): Partition {
  const namespace = `hr-${tag}`;
  // Interface names are at most 15 characters.
  const [outside, inside] = [`hr${tag}o`.slice(0, 15), `hr${tag}i`.slice(0, 15)];
  const [hostAddress, peerAddress] = [`10.77.${subnet}.1`, `10.77.${subnet}.2`];
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
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
    cut: () => ip('netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'down'),
    restore: () => ip('netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'up'),
    remove,
  };
}

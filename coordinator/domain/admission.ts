/**
 * The admission rule, as one pure function used both to grant for real and to simulate the queue for
 * estimated start times:
 *  1. GUEST and HYPERVISOR tokens are never active together on a host;
 *  2. at most one active token per VM, and per-kind caps from the host's policy;
 *  3. no starvation (phase fairness): a request is passed over only by requests of its own kind; one of
 *     the other kind is granted ahead of it only if that one arrived earlier. So once a request waits, new
 *     grants of the other kind stop, and it is served after a bounded number of grants. Within a kind,
 *     higher priority first, then arrival order.
 */
import { type TokenKind, otherKind } from './lease';
import type { HostPolicy } from './policy';

export interface ActiveView {
  kind: TokenKind;
  vm: string;
}

export interface WaitingView {
  kind: TokenKind;
  vm: string;
  priority: number;
  seq: number;
}

/** Queue order within a kind: higher priority first, then first come. */
export function compareWaiting(a: WaitingView, b: WaitingView): number {
  return b.priority - a.priority || a.seq - b.seq;
}

/**
 * Which waiting requests may be granted now, in grant order. `queue` must be sorted by `compareWaiting`
 * within each kind (it may mix kinds). Pure: reads its arguments, returns a subset of `queue`.
 */
export function selectGrants<W extends WaitingView>(
  active: readonly ActiveView[],
  queue: readonly W[],
  policy: HostPolicy,
  paused: boolean,
): W[] {
  if (paused || queue.length === 0) return [];
  const oldest: Record<TokenKind, number> = { GUEST: Infinity, HYPERVISOR: Infinity };
  for (const w of queue) oldest[w.kind] = Math.min(oldest[w.kind], w.seq);

  let phase: TokenKind | undefined = active.length > 0 ? active[0].kind : undefined;
  let running = active.length;
  const busyVms = new Set(active.map((a) => a.vm));
  const grants: W[] = [];
  for (const w of queue) {
    if (phase !== undefined && w.kind !== phase) continue;
    if (oldest[otherKind(w.kind)] < w.seq) continue;
    const cap = w.kind === 'GUEST' ? policy.maxGuestTokens : policy.maxHypervisorTokens;
    if (running >= cap || busyVms.has(w.vm)) continue;
    grants.push(w);
    phase = w.kind;
    busyVms.add(w.vm);
    running++;
  }
  return grants;
}

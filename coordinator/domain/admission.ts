/**
 * The admission rule, as one pure function used both to grant for real and to simulate the queue for
 * estimated start times:
 *  1. GUEST and HYPERVISOR tokens are never active together on a host;
 *  2. at most one active token per VM, and per-kind caps from the host's policy;
 *  3. phase fairness: while a request of one kind waits, no new token of the other kind is granted, and
 *     when the host is idle the kind that has waited longest goes first; within a kind, higher priority
 *     first, then arrival order.
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

  let oldest: W | undefined;
  const waitingKinds = new Set<TokenKind>();
  for (const w of queue) {
    waitingKinds.add(w.kind);
    if (!oldest || w.seq < oldest.seq) oldest = w;
  }

  const activeKind = active.length > 0 ? active[0].kind : undefined;
  let phase: TokenKind;
  if (activeKind) {
    // Phase fairness: a waiter of the other kind stops new grants of this kind until the host drains.
    if (waitingKinds.has(otherKind(activeKind))) return [];
    phase = activeKind;
  } else {
    phase = oldest!.kind;
  }

  const cap = phase === 'GUEST' ? policy.maxGuestTokens : policy.maxHypervisorTokens;
  let running = active.length;
  const busyVms = new Set(active.map((a) => a.vm));
  const grants: W[] = [];
  for (const w of queue) {
    if (running >= cap) break;
    if (w.kind !== phase || busyVms.has(w.vm)) continue;
    grants.push(w);
    busyVms.add(w.vm);
    running++;
  }
  return grants;
}

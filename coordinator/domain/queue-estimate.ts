/**
 * Estimated start times for waiting requests, by replaying the admission rule forward in time with each
 * token's expected duration. An estimate, not a promise: holders finish early or late.
 */
import { type ActiveView, type WaitingView, selectGrants } from './admission';
import { otherKind } from './lease';
import type { HostPolicy } from './policy';

export interface ActiveSlot extends ActiveView {
  expectedEnd: number;
}

export interface WaitingWork extends WaitingView {
  expectedDurationMs: number;
}

/**
 * Start time of each waiting request, keyed by the request object. Returns an empty map while the host is
 * paused (nothing can be estimated). `queue` is in queue order (see compareWaiting).
 */
export function estimateStarts<W extends WaitingWork>(
  now: number,
  active: readonly ActiveSlot[],
  queue: readonly W[],
  policy: HostPolicy,
  paused: boolean,
): Map<W, number> {
  const starts = new Map<W, number>();
  if (paused) return starts;
  let t = now;
  const running: { kind: W['kind']; vm: string; end: number }[] = active.map((a) => ({
    kind: a.kind,
    vm: a.vm,
    end: Math.max(a.expectedEnd, now),
  }));
  let remaining = queue.slice();
  while (remaining.length > 0) {
    const grants = selectGrants(running, remaining, policy, false);
    for (const g of grants) {
      starts.set(g, t);
      running.push({ kind: g.kind, vm: g.vm, end: t + Math.max(g.expectedDurationMs, 1) });
    }
    if (grants.length > 0) {
      const granted = new Set<W>(grants);
      remaining = remaining.filter((w) => !granted.has(w));
    }
    if (remaining.length === 0 || running.length === 0) break;
    t = Math.min(...running.map((r) => r.end));
    for (let i = running.length - 1; i >= 0; i--) if (running[i].end <= t) running.splice(i, 1);
  }
  return starts;
}

/** Why a request waits right now, for people. */
export function describeWait(
  request: WaitingView,
  active: readonly ActiveView[],
  queue: readonly WaitingView[],
  policy: HostPolicy,
  paused: boolean,
): string {
  if (paused) return 'host is paused';
  const other = otherKind(request.kind);
  const holders = active.filter((a) => a.kind === other).map((a) => a.vm);
  if (holders.length === 1) return `a ${other} backup of ${holders[0]} holds the host`;
  if (holders.length > 1) return `${holders.length} ${other} backups (of ${holders.join(', ')}) hold the host`;
  if (active.some((a) => a.vm === request.vm)) return `another backup of VM ${request.vm} is running`;
  const cap = request.kind === 'GUEST' ? policy.maxGuestTokens : policy.maxHypervisorTokens;
  if (active.length >= cap) return `${request.kind} cap reached (${active.length}/${cap})`;
  if (queue.some((w) => w.kind === other && w.seq < request.seq)) return `earlier ${other} requests go first`;
  const ahead = queue.findIndex((w) => w === request);
  return ahead > 0 ? `${ahead} request(s) ahead` : 'next in line';
}

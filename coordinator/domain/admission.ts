/**
 * The admission rule, as one pure function used both to grant for real and to simulate the queue for
 * estimated start times:
 *  1. GUEST and HYPERVISOR tokens are never active together on a host;
 *  2. at most one active token per VM, and per-kind caps from the host's policy;
 *  3. no starvation (phase fairness): a request is passed over only by requests of its own kind; one of
 *     the other kind is granted ahead of it only if that one arrived earlier. So once a request waits, new
 *     grants of the other kind stop, and it is served after a bounded number of grants. Within a kind,
 *     higher priority first, then arrival order.
 *  4. a request naming a shared target (targets.ts) starts only while the target's active tokens, on every
 *     host, are below its concurrency and their I/O budgets plus its own stay within the target's.
 */
import { type TokenKind, otherKind } from './lease';
import type { HostPolicy } from './policy';
import { type TargetLimits, type TargetLoad, addLoad, targetFits } from './targets';

export interface ActiveView {
  kind: TokenKind;
  vm: string;
}

export interface WaitingView {
  kind: TokenKind;
  vm: string;
  priority: number;
  seq: number;
  /** The shared target it names, if any. */
  target?: string;
}

/** The shared targets' limits and what the active tokens of every host hold of them now. */
export interface TargetRule {
  limits: ReadonlyMap<string, TargetLimits>;
  load: ReadonlyMap<string, TargetLoad>;
  /** The I/O budget a request would be granted, counted against its target's (targets.ts targetIoBudget). */
  ioOf(w: WaitingView): number;
}

/** Whether the target `w` names (if any) has room for it beside `load`. */
export function targetAdmits(w: WaitingView, rule: TargetRule | undefined, load = rule?.load): boolean {
  const limits = w.target ? rule?.limits.get(w.target) : undefined;
  if (!limits) return true;
  return targetFits(limits, load?.get(limits.name) ?? { active: 0, ioBytesPerSec: 0 }, rule!.ioOf(w));
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
  targets?: TargetRule,
): W[] {
  if (paused || queue.length === 0) return [];
  const load = targets && new Map(targets.load);
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
    if (!targetAdmits(w, targets, load)) continue;
    if (load && w.target) addLoad(load, w.target, targets!.ioOf(w));
    grants.push(w);
    phase = w.kind;
    busyVms.add(w.vm);
    running++;
  }
  return grants;
}

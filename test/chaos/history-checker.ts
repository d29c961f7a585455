/**
 * The chaos test's judge: what the clients were told, and the coordinator's history as stored in SQLite,
 * checked against the guarantees. Pure: plain data in, counts and violations out.
 *
 * How long a token is held, judged from what a client can honestly know:
 *  - it starts when the client received GRANTED (the coordinator had committed it before);
 *  - it ends when the holder sent its release, if that release went through (acknowledged, or recorded
 *    as RELEASED in the store): the holder stops its work before it releases, and the coordinator frees
 *    nothing before it has the release;
 *  - otherwise it ends at the latest expiry the coordinator told the holder (in the grant or an
 *    acknowledged renewal): the holder may work until then.
 * Times the client measured (Date.now(), one kernel clock for every process) are only compared with
 * each other, and the coordinator's told times only with the coordinator's, so that the few
 * milliseconds between two processes' clocks cannot make or hide an overlap.
 *
 * The store is replayed in commit order as a second, exact source: no GRANTED while a token of the other
 * kind or of the same VM is active, fencing strictly increasing per host, nothing restored or ended that
 * was not active.
 */
import type { TokenKind } from '../../coordinator/domain/lease';
import type { HistoryRecord } from '../../coordinator/store/store';

/** How a holder's release went. */
export type ReleaseResult =
  /** Acknowledged by the coordinator. */
  | 'acknowledged'
  /** Refused for good (FAILED_PRECONDITION / NOT_FOUND): the token had ended. */
  | 'refused'
  /** No answer before the client gave up (the coordinator was down). */
  | 'unanswered'
  /** Not sent: the holder abandoned the token, or the coordinator had said it was gone. */
  | 'not-sent';

/** A token a client was granted, and what it was told while holding it. Client times are Date.now(). */
export interface GrantRecord {
  tokenId: string;
  fencing: number;
  receivedAt: number;
  /** token.granted_unix_ms: the coordinator's clock. */
  grantedAtCoord: number;
  /** Latest expires_unix_ms told in the grant or an acknowledged renewal: the coordinator's clock. */
  expiresAtCoord: number;
  /** Renewals acknowledged. */
  renewals: number;
  /** First Release attempt; absent when none was sent. */
  releaseSentAt?: number;
  release: ReleaseResult;
  /** Why the holder stopped early: a refused renewal or its fail-safe deadline. */
  lost?: string;
  /** The holder dropped the token without releasing it, as a crashed agent would. */
  abandoned?: boolean;
}

/** One acquire: a request id, and what came of it. */
export interface CycleRecord {
  client: string;
  requestId: string;
  host: string;
  vm: string;
  kind: TokenKind;
  /** The shared target the acquire named, if any. */
  target?: string;
  /** When the first Acquire attempt was sent (Date.now()). */
  sentAt: number;
  outcome: 'granted' | 'denied' | 'skipped' | 'cancelled';
  /** DENIED as received: its reason (the wire enum name). */
  deniedReason?: string;
  grant?: GrantRecord;
}

export type ViolationKind =
  | 'kind-overlap'
  | 'vm-overlap'
  | 'fencing'
  | 'grant-missing'
  | 'release-missing'
  | 'renewal-missing'
  | 'denial-missing'
  | 'premature-expiry'
  | 'target-oversubscribed'
  | 'store-inconsistent';

export interface Violation {
  kind: ViolationKind;
  message: string;
}

export interface CheckReport {
  counts: Record<string, number>;
  violations: Violation[];
}

/** One held token as an interval: client-measured start, and an end on one of the two clocks. */
interface Held {
  record: CycleRecord;
  grant: GrantRecord;
  end: { clock: 'client'; at: number } | { clock: 'coordinator'; at: number };
}

/** True when `a` began before `b` ended, each read on the clock `b`'s end was measured on. */
function startsBeforeEnd(a: Held, b: Held): boolean {
  return b.end.clock === 'client' ? a.grant.receivedAt < b.end.at : a.grant.grantedAtCoord < b.end.at;
}

function overlaps(a: Held, b: Held): boolean {
  return startsBeforeEnd(a, b) && startsBeforeEnd(b, a);
}

function describe(h: Held): string {
  const g = h.grant;
  const end = h.end.clock === 'client' ? `released (sent at ${h.end.at})` : `held until its told expiry ${h.end.at}`;
  return `${h.record.kind} ${g.tokenId} (fencing ${g.fencing}, ${h.record.host}/${h.record.vm}, received ${g.receivedAt}, ${end})`;
}

/** Client-side overlaps: kinds on a host, tokens on a VM. */
function checkOverlaps(held: Held[], violations: Violation[]): void {
  const byHost = new Map<string, Held[]>();
  for (const h of held) {
    const list = byHost.get(h.record.host) ?? [];
    list.push(h);
    byHost.set(h.record.host, list);
  }
  for (const list of byHost.values()) {
    // Sorted by start, so that the inner loop can stop at the first interval that starts after `a` ended.
    list.sort((a, b) => a.grant.receivedAt - b.grant.receivedAt);
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      for (let j = i + 1; j < list.length; j++) {
        const b = list[j];
        if (a.end.clock === 'client' && b.grant.receivedAt >= a.end.at) break;
        if (!overlaps(a, b)) continue;
        if (a.record.kind !== b.record.kind) {
          violations.push({ kind: 'kind-overlap', message: `${describe(a)} overlaps ${describe(b)}` });
        }
        if (a.record.vm === b.record.vm) {
          violations.push({ kind: 'vm-overlap', message: `two tokens for one VM: ${describe(a)} and ${describe(b)}` });
        }
      }
    }
  }
}

/** Client-side fencing: distinct per host, and larger for a token requested after another was received. */
function checkClientFencing(held: Held[], violations: Violation[]): void {
  const byHost = new Map<string, Held[]>();
  for (const h of held) byHost.set(h.record.host, [...(byHost.get(h.record.host) ?? []), h]);
  for (const [host, list] of byHost) {
    const byFencing = new Map<number, string>();
    for (const h of list) {
      const other = byFencing.get(h.grant.fencing);
      if (other !== undefined && other !== h.grant.tokenId) {
        violations.push({
          kind: 'fencing',
          message: `host ${host}: tokens ${other} and ${h.grant.tokenId} share fencing ${h.grant.fencing}`,
        });
      }
      byFencing.set(h.grant.fencing, h.grant.tokenId);
    }
    // a was received before b was even asked for, so the coordinator granted a first.
    const byReceived = [...list].sort((x, y) => x.grant.receivedAt - y.grant.receivedAt);
    const bySent = [...list].sort((x, y) => x.record.sentAt - y.record.sentAt);
    let k = 0;
    let maxFencing = -Infinity;
    let maxToken = '';
    for (const b of bySent) {
      while (k < byReceived.length && byReceived[k].grant.receivedAt < b.record.sentAt) {
        if (byReceived[k].grant.fencing > maxFencing) {
          maxFencing = byReceived[k].grant.fencing;
          maxToken = byReceived[k].grant.tokenId;
        }
        k++;
      }
      if (b.grant.fencing <= maxFencing) {
        violations.push({
          kind: 'fencing',
          message: `host ${host}: ${b.grant.tokenId} (asked for at ${b.record.sentAt}) got fencing ${b.grant.fencing}, not above ${maxToken}'s ${maxFencing} received before`,
        });
      }
    }
  }
}

/** A shared target's limit on concurrent backups, as coordinator.yaml's targets set it. */
export interface TargetLimit {
  name: string;
  maxConcurrent: number;
}

/**
 * Client-side over-subscription of a target: more than its maxConcurrent tokens held at one moment, i.e.
 * maxConcurrent + 1 of them pairwise overlapping (intervals that pairwise overlap share a moment).
 */
function checkTargets(held: Held[], targets: readonly TargetLimit[], violations: Violation[]): void {
  for (const t of targets) {
    const on = held.filter((h) => h.record.target === t.name);
    const clique = (chosen: Held[], from: number): Held[] | undefined => {
      if (chosen.length > t.maxConcurrent) return chosen;
      for (let i = from; i < on.length; i++) {
        if (chosen.every((c) => overlaps(c, on[i]))) {
          const found = clique([...chosen, on[i]], i + 1);
          if (found) return found;
        }
      }
      return undefined;
    };
    const found = clique([], 0);
    if (found) {
      violations.push({
        kind: 'target-oversubscribed',
        message: `target ${t.name} (at most ${t.maxConcurrent}): held together by ${found.map(describe).join('; ')}`,
      });
    }
  }
}

/** A GRANTED record's shared target, from its detail (history-records.ts: `…, on target NAME (…)`). */
const targetOf = (r: HistoryRecord) => /, on target (\S+) \(/.exec(r.detail)?.[1];

/** The store replayed in commit order. */
function replayStore(
  history: readonly HistoryRecord[],
  targets: readonly TargetLimit[],
  violations: Violation[],
  counts: Record<string, number>,
): void {
  const limits = new Map(targets.map((t) => [t.name, t.maxConcurrent]));
  const onTarget = new Map<string, Set<string>>();
  const targetOfToken = new Map<string, string>();
  let peak = 0;
  const hosts = new Map<string, { active: Map<string, HistoryRecord>; fencing: number }>();
  const grantedTokens = new Set<string>();
  const grantedRequests = new Set<string>();
  const restoredTokens = new Set<string>();
  const renewedAfterRestore = new Set<string>();
  const bad = (message: string) => violations.push({ kind: 'store-inconsistent', message });
  for (const r of [...history].sort((a, b) => a.seq - b.seq)) {
    if (r.tokenId === '') continue;
    let host = hosts.get(r.host);
    if (!host) hosts.set(r.host, (host = { active: new Map(), fencing: 0 }));
    switch (r.type) {
      case 'GRANTED':
        if (grantedTokens.has(r.tokenId)) bad(`seq ${r.seq}: token ${r.tokenId} granted twice`);
        if (grantedRequests.has(r.requestId)) bad(`seq ${r.seq}: request ${r.requestId} granted twice`);
        for (const a of host.active.values()) {
          if (a.kind !== r.kind) {
            violations.push({
              kind: 'kind-overlap',
              message: `store seq ${r.seq}: ${r.kind} ${r.tokenId} granted on ${r.host} while ${a.kind} ${a.tokenId} was active`,
            });
          }
          if (a.vm === r.vm) {
            violations.push({
              kind: 'vm-overlap',
              message: `store seq ${r.seq}: ${r.tokenId} granted for ${r.host}/${r.vm} while ${a.tokenId} was active`,
            });
          }
        }
        if (r.fencing <= host.fencing) {
          violations.push({
            kind: 'fencing',
            message: `store seq ${r.seq}: ${r.tokenId} on ${r.host} has fencing ${r.fencing}, not above ${host.fencing}`,
          });
        }
        host.fencing = Math.max(host.fencing, r.fencing);
        host.active.set(r.tokenId, r);
        {
          const target = targetOf(r);
          if (target !== undefined) {
            const set = onTarget.get(target) ?? onTarget.set(target, new Set()).get(target)!;
            set.add(r.tokenId);
            targetOfToken.set(r.tokenId, target);
            peak = Math.max(peak, set.size);
            const limit = limits.get(target);
            if (limit !== undefined && set.size > limit) {
              violations.push({
                kind: 'target-oversubscribed',
                message: `store seq ${r.seq}: ${r.tokenId} granted on target ${target} while ${set.size - 1} of its tokens were active (at most ${limit})`,
              });
            }
          }
        }
        grantedTokens.add(r.tokenId);
        grantedRequests.add(r.requestId);
        break;
      case 'RELEASED':
      case 'EXPIRED':
      case 'REVOKED':
        if (!host.active.delete(r.tokenId)) bad(`seq ${r.seq}: ${r.type} for ${r.tokenId}, which was not active`);
        onTarget.get(targetOfToken.get(r.tokenId) ?? '')?.delete(r.tokenId);
        break;
      case 'RESTORED':
        if (!host.active.has(r.tokenId)) bad(`seq ${r.seq}: restored ${r.tokenId}, which was not active`);
        restoredTokens.add(r.tokenId);
        break;
      case 'RENEWED':
        if (!host.active.has(r.tokenId)) bad(`seq ${r.seq}: renewed ${r.tokenId}, which was not active`);
        if (restoredTokens.has(r.tokenId)) renewedAfterRestore.add(r.tokenId);
        break;
      default:
        break;
    }
  }
  counts['store: tokens restored after a restart'] = restoredTokens.size;
  counts['store: tokens renewed by their holder after a restart'] = renewedAfterRestore.size;
  counts['store: tokens still active at the end'] = [...hosts.values()].reduce((n, h) => n + h.active.size, 0);
  if (targets.length > 0) counts['store: most tokens on one target at once'] = peak;
}

/**
 * Checks the clients' records against each other and against the store's history (read after the last
 * restart), and each shared target's limit in both. Every violation found is listed; `counts` says how much
 * was checked.
 */
export function checkHistory(
  cycles: readonly CycleRecord[],
  history: readonly HistoryRecord[],
  targets: readonly TargetLimit[] = [],
): CheckReport {
  const violations: Violation[] = [];
  const counts: Record<string, number> = {};
  const add = (key: string, n = 1) => (counts[key] = (counts[key] ?? 0) + n);
  for (const key of [
    'acquires',
    'grants',
    'renewals',
    'releases acknowledged',
    'releases confirmed by the store only',
    'tokens abandoned',
    'tokens lost (renewal refused or fail-safe)',
    'denials',
    'skipped',
    'cancelled',
  ])
    counts[key] = 0;

  const storeGranted = new Map<string, HistoryRecord>();
  const storeEnded = new Map<string, HistoryRecord>();
  const storeRenewals = new Map<string, number>();
  const storeDenied = new Map<string, HistoryRecord>();
  for (const r of history) {
    if (r.type === 'GRANTED') storeGranted.set(r.tokenId, r);
    else if (r.type === 'RELEASED' || r.type === 'EXPIRED' || r.type === 'REVOKED') storeEnded.set(r.tokenId, r);
    else if (r.type === 'RENEWED') storeRenewals.set(r.tokenId, (storeRenewals.get(r.tokenId) ?? 0) + 1);
    else if (r.type === 'DENIED') storeDenied.set(r.requestId, r);
  }

  const held: Held[] = [];
  for (const c of cycles) {
    add('acquires');
    if (c.outcome === 'denied') {
      add('denials');
      add(`denials: ${c.deniedReason}`);
      const d = storeDenied.get(c.requestId);
      if (!d || !d.detail.startsWith(`${c.deniedReason}:`)) {
        violations.push({
          kind: 'denial-missing',
          message: `${c.requestId} was told DENIED ${c.deniedReason}; the store has ${d ? `"${d.detail}"` : 'no DENIED'}`,
        });
      }
    }
    if (c.outcome === 'skipped') add('skipped');
    if (c.outcome === 'cancelled') add('cancelled');
    const g = c.grant;
    if (c.outcome !== 'granted' || !g) continue;
    add('grants');
    add('renewals', g.renewals);
    if (g.abandoned) add('tokens abandoned');
    if (g.lost) add('tokens lost (renewal refused or fail-safe)');

    const stored = storeGranted.get(g.tokenId);
    if (!stored) {
      violations.push({
        kind: 'grant-missing',
        message: `${c.client} was granted ${g.tokenId} (${c.requestId}); the store has no GRANTED for it`,
      });
    } else if (
      stored.fencing !== g.fencing ||
      stored.host !== c.host ||
      stored.vm !== c.vm ||
      stored.kind !== c.kind ||
      stored.requestId !== c.requestId
    ) {
      violations.push({
        kind: 'grant-missing',
        message: `${g.tokenId}: told fencing ${g.fencing} for ${c.kind} ${c.host}/${c.vm} ${c.requestId}; stored ${stored.fencing} for ${stored.kind} ${stored.host}/${stored.vm} ${stored.requestId}`,
      });
    }
    if ((storeRenewals.get(g.tokenId) ?? 0) < g.renewals) {
      violations.push({
        kind: 'renewal-missing',
        message: `${g.tokenId}: ${g.renewals} renewals acknowledged, ${storeRenewals.get(g.tokenId) ?? 0} stored`,
      });
    }
    const ended = storeEnded.get(g.tokenId);
    if (g.release === 'acknowledged') {
      add('releases acknowledged');
      if (ended?.type !== 'RELEASED') {
        violations.push({
          kind: 'release-missing',
          message: `${g.tokenId}: release acknowledged; the store has ${ended?.type ?? 'no end'}`,
        });
      }
    }
    if (ended?.type === 'EXPIRED' && ended.at < g.expiresAtCoord) {
      violations.push({
        kind: 'premature-expiry',
        message: `${g.tokenId}: expired at ${ended.at}, before the expiry its holder was told (${g.expiresAtCoord})`,
      });
    }
    const releasedInStore = g.releaseSentAt !== undefined && ended?.type === 'RELEASED';
    if (releasedInStore && g.release !== 'acknowledged') add('releases confirmed by the store only');
    held.push({
      record: c,
      grant: g,
      end:
        g.release === 'acknowledged' || releasedInStore
          ? { clock: 'client', at: g.releaseSentAt! }
          : { clock: 'coordinator', at: g.expiresAtCoord },
    });
  }

  checkOverlaps(held, violations);
  checkClientFencing(held, violations);
  checkTargets(held, targets, violations);
  replayStore(history, targets, violations, counts);
  counts['store: history records'] = history.length;
  counts['store: EXPIRED'] = history.filter((r) => r.type === 'EXPIRED').length;
  for (const kind of [
    'kind-overlap',
    'vm-overlap',
    'fencing',
    ...(targets.length ? (['target-oversubscribed'] as const) : []),
  ]) {
    counts[`violations: ${kind}`] = violations.filter((v) => v.kind === kind).length;
  }
  return { counts, violations };
}

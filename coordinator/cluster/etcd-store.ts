/**
 * The cluster's store: the coordination state in etcd, written only by the leader. Every commit is an etcd
 * transaction guarded by the leader's election key (its create revision): once the leader's election lease
 * has lapsed, or another member leads, the guard fails and nothing of the batch is written
 * (LeadershipLostError). The leader owns the state while it leads, so it keeps what it loaded and committed
 * at hand and answers the planner's and metrics' reads from memory; the history is read from etcd.
 *
 * Keys, under the cluster's prefix: `hosts/<name>` (its policy and pause), `fencing/<name>` (its last fencing
 * number: apart, since it changes at every grant and the policy rarely), `tokens/<id>` (active and ended), `agents/<vm>`,
 * `history/<first seq>` (the records of one commit, a page), `meta/seq` (the last seq).
 */
import type { Etcd3, IOperation } from 'etcd3';
import type { LessorEvent } from '../domain/events';
import type { EndState, EndedRequest, Lease, Outcome } from '../domain/lease';
import type { HostRecord } from '../domain/lessor';
import type { CompactionStep } from '../store/history-compaction';
import { HISTORY_TYPE, historyFields } from '../store/history-records';
import type { AgentRecord, EndedRun, HistoryQuery, HistoryRecord, LastSuccess, Store } from '../store/store';

/** etcd refuses a transaction of more than --max-txn-ops operations (128 by default): stay below. */
export const MAX_OPS_PER_TXN = 100;
/** etcd refuses requests over --max-request-bytes (1.5 MiB by default): stay well below. */
export const MAX_BYTES_PER_TXN = 1024 * 1024;
/** History pages read per round trip. */
const PAGES_PER_READ = 64;
/** Reads of history pages one compaction step makes at most, when active tokens' pages are skipped. */
const MAX_COMPACTION_READS = 20;

/** A token as stored: the lease (its expiry is not stored: a restore gives a fresh TTL) and how it ended. */
type StoredToken = Omit<Lease, 'expiresAt'> & { state: 'active' | EndState; endedAt?: number; outcome?: Outcome };

/** The election key this leader holds, and its create revision: what every commit is guarded by. */
export interface LeaderGuard {
  key: string;
  createRevision: string;
}

/** A commit was refused because this member no longer leads: it must step down. */
export class LeadershipLostError extends Error {
  constructor() {
    super('this member no longer leads the cluster (its election key is gone or replaced): stepping down');
    this.name = 'LeadershipLostError';
  }
}

const pad = (seq: number) => String(seq).padStart(16, '0');

export class EtcdStore implements Store {
  readonly name = 'etcd';
  private readonly hosts = new Map<string, HostRecord>();
  private readonly tokens = new Map<string, StoredToken>();
  private readonly agentsByVm = new Map<string, AgentRecord>();
  private seq = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly guard: LeaderGuard,
    private readonly timeoutMs = 5_000,
  ) {}

  private key(...parts: string[]): string {
    return this.prefix + parts.join('/');
  }

  private async readPrefix<T>(sub: string): Promise<T[]> {
    const values = await this.client.getAll().prefix(this.key(sub, '')).options(this.deadline()).strings();
    return Object.values(values).map((v) => JSON.parse(v) as T);
  }

  private deadline() {
    return { deadline: Date.now() + this.timeoutMs };
  }

  async load(endedSince: number) {
    const [stored, fencings, tokens, agents, seq] = await Promise.all([
      this.readPrefix<HostRecord>('hosts'),
      this.client.getAll().prefix(this.key('fencing', '')).options(this.deadline()).strings(),
      this.readPrefix<StoredToken>('tokens'),
      this.readPrefix<AgentRecord>('agents'),
      this.client.get(this.key('meta', 'seq')).options(this.deadline()).number(),
    ]);
    const fencingOf = (name: string) => Number(fencings[this.key('fencing', name)] ?? 0);
    const hosts = stored.map((h) => ({ ...h, fencing: Math.max(h.fencing, fencingOf(h.name)) }));
    this.hosts.clear();
    this.tokens.clear();
    this.agentsByVm.clear();
    for (const h of hosts) this.hosts.set(h.name, h);
    for (const t of tokens) this.tokens.set(t.tokenId, t);
    for (const a of agents) this.agentsByVm.set(a.vm, a);
    this.seq = seq ?? 0;
    const leases: Lease[] = tokens
      .filter((t) => t.state === 'active')
      .map(({ state: _s, endedAt: _e, outcome: _o, ...lease }) => ({ ...lease, expiresAt: 0 }));
    const ended: EndedRequest[] = tokens
      .filter((t) => t.state !== 'active' && (t.endedAt ?? 0) >= endedSince)
      .sort((a, b) => a.endedAt! - b.endedAt!)
      .map((t) => ({ requestId: t.requestId, tokenId: t.tokenId, state: t.state as EndState, endedAt: t.endedAt! }));
    return { hosts, leases, ended, agents };
  }

  async commit(events: readonly LessorEvent[]): Promise<HistoryRecord[]> {
    if (events.length === 0) return [];
    const hosts = new Map<string, HostRecord>();
    const fencings = new Map<string, number>();
    const tokens = new Map<string, StoredToken>();
    const host = (name: string) => hosts.get(name) ?? this.hosts.get(name);
    const token = (id: string) => tokens.get(id) ?? this.tokens.get(id);
    const records: HistoryRecord[] = [];
    let seq = this.seq;
    for (const e of events) {
      switch (e.type) {
        case 'host-added':
          if (!host(e.host))
            hosts.set(e.host, { name: e.host, fencing: 0, paused: false, pauseReason: '', policy: e.policy });
          break;
        case 'granted': {
          const { expiresAt: _x, ...lease } = e.lease;
          tokens.set(lease.tokenId, { ...lease, state: 'active' });
          fencings.set(lease.host, Math.max(fencings.get(lease.host) ?? 0, lease.fencing));
          break;
        }
        case 'released':
        case 'expired':
        case 'revoked': {
          const t = token(e.lease.tokenId);
          if (t) {
            const outcome = e.type === 'released' ? { outcome: e.outcome } : {};
            tokens.set(t.tokenId, { ...t, state: e.type, endedAt: e.at, ...outcome });
          }
          break;
        }
        case 'host-paused':
        case 'host-resumed': {
          const h = host(e.host);
          const paused = e.type === 'host-paused';
          if (h) hosts.set(h.name, { ...h, paused, pauseReason: paused ? e.reason : '' });
          break;
        }
        case 'policy-changed': {
          const h = host(e.host);
          if (h) hosts.set(h.name, { ...h, policy: e.policy });
          break;
        }
        default:
          break;
      }
      const type = HISTORY_TYPE[e.type];
      if (type) records.push({ seq: ++seq, type, ...historyFields(e) });
    }
    const puts: [string, string][] = [
      ...[...hosts.values()].map((h): [string, string] => [this.key('hosts', h.name), JSON.stringify(h)]),
      ...[...fencings].map(([name, f]): [string, string] => [this.key('fencing', name), String(f)]),
      ...[...tokens.values()].map((t): [string, string] => [this.key('tokens', t.tokenId), JSON.stringify(t)]),
    ];
    if (records.length > 0) {
      puts.push([this.key('history', pad(records[0].seq)), JSON.stringify(records)]);
      puts.push([this.key('meta', 'seq'), String(seq)]);
    }
    await this.guarded(
      puts.map(([k, v]) => this.client.put(k).value(v)),
      puts.map(([k, v]) => k.length + v.length),
    );
    for (const [name, h] of hosts) this.hosts.set(name, h);
    for (const [name, f] of fencings) {
      const h = this.hosts.get(name);
      if (h) this.hosts.set(name, { ...h, fencing: Math.max(h.fencing, f) });
    }
    for (const [id, t] of tokens) this.tokens.set(id, t);
    this.seq = seq;
    return records;
  }

  /**
   * Runs the operations in transactions guarded by the leader's key, as few as etcd's limits allow: one,
   * unless a batch is very large; then in order, each guarded, so a deposed leader writes none of the rest.
   */
  private async guarded(ops: IOperation[], sizes: number[]): Promise<void> {
    let start = 0;
    while (start < ops.length) {
      let end = start;
      let bytes = 0;
      while (
        end < ops.length &&
        end - start < MAX_OPS_PER_TXN &&
        (end === start || bytes + sizes[end] <= MAX_BYTES_PER_TXN)
      )
        bytes += sizes[end++];
      let succeeded: boolean;
      try {
        ({ succeeded } = await this.client
          .if(this.guard.key, 'Create', '==', this.guard.createRevision)
          .then(...ops.slice(start, end))
          .options(this.deadline())
          .commit());
      } catch (e) {
        throw new Error(`etcd has no quorum or cannot be reached (${(e as Error).message})`, { cause: e });
      }
      if (!succeeded) throw new LeadershipLostError();
      start = end;
    }
  }

  async history(query: HistoryQuery): Promise<HistoryRecord[]> {
    const out: HistoryRecord[] = [];
    const types = query.types?.length ? new Set(query.types) : undefined;
    const matches = (r: HistoryRecord) =>
      (!query.host || r.host === query.host) &&
      (!query.vm || r.vm === query.vm) &&
      (!query.since || r.at >= query.since) &&
      (!types || types.has(r.type));
    const afterSeq = query.afterSeq ?? 0;
    const start = this.key('history', '');
    // Newest pages first, until the limit is met or the pages are older than afterSeq.
    let end = this.key('history', '\uffff');
    for (;;) {
      const result = await this.client
        .getAll()
        .inRange({ start, end })
        .sort('Key', 'Descend')
        .limit(PAGES_PER_READ)
        .options(this.deadline())
        .exec();
      for (const kv of result.kvs) {
        const page = JSON.parse(kv.value.toString()) as HistoryRecord[];
        for (let i = page.length - 1; i >= 0; i--) {
          const r = page[i];
          if (r.seq <= afterSeq) return out.reverse();
          if (matches(r)) out.push(r);
          if (out.length >= query.limit) return out.reverse();
        }
      }
      if (result.kvs.length < PAGES_PER_READ) return out.reverse();
      end = result.kvs[result.kvs.length - 1].key.toString();
    }
  }

  endedRuns(host: string, limit: number): EndedRun[] {
    return this.ended((t) => t.host === host, limit);
  }

  vmEndedRuns(vm: string, limit: number): EndedRun[] {
    return this.ended((t) => t.vm === vm, limit);
  }

  /** The `limit` most recently ended tokens that `which` picks, oldest first. */
  private ended(which: (t: StoredToken) => boolean, limit: number): EndedRun[] {
    return [...this.tokens.values()]
      .filter((t) => t.state !== 'active' && which(t))
      .sort((a, b) => b.endedAt! - a.endedAt!)
      .slice(0, limit)
      .reverse()
      .map((t) => ({
        kind: t.kind,
        vm: t.vm,
        job: t.job,
        grantedAt: t.grantedAt,
        endedAt: t.endedAt!,
        state: t.state as EndState,
        ...(t.outcome && { outcome: t.outcome }),
      }));
  }

  lastSuccesses(): LastSuccess[] {
    const newest = new Map<string, LastSuccess>();
    for (const t of this.tokens.values()) {
      if (t.state !== 'released' || !t.outcome?.success) continue;
      const id = [t.host, t.kind, t.vm, t.job].join('\0');
      if ((newest.get(id)?.endedAt ?? -1) < t.endedAt!)
        newest.set(id, { host: t.host, kind: t.kind, vm: t.vm, job: t.job, endedAt: t.endedAt! });
    }
    return [...newest.values()];
  }

  /**
   * Removes, oldest first, history pages older than the retention or beyond its row cap (never a page with
   * a record of an active token), and ended tokens older than both the retention and the retry window,
   * but for each VM's job its newest run and newest success.
   */
  async compactHistory(step: CompactionStep): Promise<{ history: number; tokens: number }> {
    const active = new Set([...this.tokens.values()].filter((t) => t.state === 'active').map((t) => t.tokenId));
    // Oldest pages first, past those an active token still needs, until `batch` are due or one is too new.
    const doomedPages: string[] = [];
    let rows = 0;
    let start = this.key('history', '');
    const end = this.key('history', '\uffff');
    scan: for (let round = 0; round < MAX_COMPACTION_READS && doomedPages.length < step.batch; round++) {
      const pages = await this.client
        .getAll()
        .inRange({ start, end })
        .sort('Key', 'Ascend')
        .limit(step.batch)
        .options(this.deadline())
        .exec();
      for (const kv of pages.kvs) {
        const page = JSON.parse(kv.value.toString()) as HistoryRecord[];
        const last = page[page.length - 1];
        const overCap = this.seq - last.seq >= step.maxRows;
        if (!(last.at < step.before || overCap)) break scan;
        if (page.some((r) => active.has(r.tokenId))) continue;
        doomedPages.push(kv.key.toString());
        rows += page.length;
        if (doomedPages.length >= step.batch) break scan;
      }
      if (pages.kvs.length < step.batch) break;
      start = `${pages.kvs[pages.kvs.length - 1].key.toString()}\0`;
    }
    const keep = new Set<string>();
    const newest = new Map<string, StoredToken>();
    const newestSuccess = new Map<string, StoredToken>();
    for (const t of this.tokens.values()) {
      if (t.state === 'active') continue;
      const id = [t.host, t.vm, t.job, t.kind].join('\0');
      if ((newest.get(id)?.endedAt ?? -1) < t.endedAt!) newest.set(id, t);
      if (t.outcome?.success && (newestSuccess.get(id)?.endedAt ?? -1) < t.endedAt!) newestSuccess.set(id, t);
    }
    for (const t of [...newest.values(), ...newestSuccess.values()]) keep.add(t.tokenId);
    const cutoff = Math.min(step.before, step.keepEndedSince);
    const doomedTokens = [...this.tokens.values()]
      .filter((t) => t.state !== 'active' && t.endedAt! < cutoff && !keep.has(t.tokenId))
      .slice(0, step.batch)
      .map((t) => t.tokenId);
    const deletes = [
      ...doomedPages.map((k) => this.client.delete().key(k)),
      ...doomedTokens.map((id) => this.client.delete().key(this.key('tokens', id))),
    ];
    if (deletes.length === 0) return { history: 0, tokens: 0 };
    await this.guarded(
      deletes,
      deletes.map(() => 64),
    );
    for (const id of doomedTokens) this.tokens.delete(id);
    return { history: rows, tokens: doomedTokens.length };
  }

  async saveAgent(agent: AgentRecord): Promise<void> {
    await this.guarded([this.client.put(this.key('agents', agent.vm)).value(JSON.stringify(agent))], [0]);
    this.agentsByVm.set(agent.vm, agent);
  }

  agents(): AgentRecord[] {
    return [...this.agentsByVm.values()];
  }

  close(): void {
    // The client belongs to the member (member.ts), which closes it.
  }
}

/**
 * The embedded store: one SQLite file in WAL mode. Each commit is one transaction, fsynced before it
 * returns (synchronous=FULL by default), so an acknowledged change survives kill -9 and power loss.
 */
import Database from 'better-sqlite3';
import type { LessorEvent } from '../domain/events';
import type { EndState, EndedRequest, Lease, TokenKind } from '../domain/lease';
import type { HostRecord } from '../domain/lessor';
import type { HostPolicy } from '../domain/policy';
import type { AgentRecord, EndedRun, HistoryQuery, HistoryRecord, LastSuccess, Store } from './store';
import { HISTORY_TYPE, historyFields } from './history-records';
import { type CompactionStep, HistoryCompaction } from './history-compaction';

export type Durability = 'full' | 'normal';

/** 2: tokens.target (shared targets). */
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS hosts (
  name TEXT PRIMARY KEY,
  fencing INTEGER NOT NULL,
  paused INTEGER NOT NULL,
  pause_reason TEXT NOT NULL,
  policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
  token_id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE,
  host TEXT NOT NULL,
  vm TEXT NOT NULL,
  job TEXT NOT NULL,
  kind TEXT NOT NULL,
  fencing INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL,
  granted_at INTEGER NOT NULL,
  slot_start INTEGER NOT NULL,
  slot_expected_end INTEGER NOT NULL,
  window_end INTEGER NOT NULL,
  budget TEXT NOT NULL,
  state TEXT NOT NULL,
  ended_at INTEGER,
  outcome TEXT,
  target TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tokens_by_state ON tokens (state, ended_at);
CREATE INDEX IF NOT EXISTS tokens_by_host_end ON tokens (host, ended_at);
CREATE INDEX IF NOT EXISTS tokens_by_vm_end ON tokens (vm, ended_at);
CREATE TABLE IF NOT EXISTS history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  type TEXT NOT NULL,
  host TEXT NOT NULL,
  vm TEXT NOT NULL,
  job TEXT NOT NULL,
  kind TEXT NOT NULL,
  token_id TEXT NOT NULL,
  fencing INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_host ON history (host, seq);
CREATE TABLE IF NOT EXISTS agents (
  vm TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  agent_version TEXT NOT NULL,
  hostname TEXT NOT NULL,
  jobs TEXT NOT NULL,
  last_hello INTEGER NOT NULL
);
`;

interface TokenRow {
  token_id: string;
  request_id: string;
  host: string;
  vm: string;
  job: string;
  kind: TokenKind;
  fencing: number;
  priority: number;
  ttl_ms: number;
  granted_at: number;
  slot_start: number;
  slot_expected_end: number;
  window_end: number;
  budget: string;
  state: string;
  ended_at: number | null;
  target: string;
}

/** Ended token rows, newest first as selected, as EndedRuns oldest first. */
function endedRunsOf(selected: unknown[]): EndedRun[] {
  const rows = selected as {
    kind: EndedRun['kind'];
    vm: string;
    job: string;
    granted_at: number;
    ended_at: number;
    state: EndedRun['state'];
    outcome: string | null;
  }[];
  return rows.reverse().map((r) => ({
    kind: r.kind,
    vm: r.vm,
    job: r.job,
    grantedAt: r.granted_at,
    endedAt: r.ended_at,
    state: r.state,
    ...(r.outcome !== null && { outcome: JSON.parse(r.outcome) }),
  }));
}

export class SqliteStore implements Store {
  readonly name = 'the database';
  private readonly db: Database.Database;
  private readonly statements;
  private readonly commitTransaction: (events: readonly LessorEvent[]) => HistoryRecord[];
  private readonly historyQueries = new Map<string, Database.Statement>();
  private readonly compaction: HistoryCompaction;

  /** Opens (creating if needed) the database file. Throws with the path when it cannot. */
  constructor(
    readonly path: string,
    durability: Durability = 'full',
  ) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('busy_timeout = 5000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `${path}: database schema version ${version} is newer than this coordinator's (${SCHEMA_VERSION})`,
      );
    }
    this.db.exec(SCHEMA);
    // A version 1 file has tokens without their shared target: none, as it had no targets then.
    if (version === 1) this.db.exec("ALTER TABLE tokens ADD COLUMN target TEXT NOT NULL DEFAULT ''");
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    const db = this.db;
    this.compaction = new HistoryCompaction(db);
    this.statements = {
      upsertHost: db.prepare(
        `INSERT INTO hosts (name, fencing, paused, pause_reason, policy) VALUES (@name, 0, 0, '', @policy)
         ON CONFLICT (name) DO NOTHING`,
      ),
      setFencing: db.prepare('UPDATE hosts SET fencing = MAX(fencing, ?) WHERE name = ?'),
      setPaused: db.prepare('UPDATE hosts SET paused = ?, pause_reason = ? WHERE name = ?'),
      setPolicy: db.prepare('UPDATE hosts SET policy = ? WHERE name = ?'),
      insertToken: db.prepare(
        `INSERT INTO tokens (token_id, request_id, host, vm, job, kind, fencing, priority, ttl_ms, granted_at,
           slot_start, slot_expected_end, window_end, budget, state, target)
         VALUES (@tokenId, @requestId, @host, @vm, @job, @kind, @fencing, @priority, @ttlMs, @grantedAt,
           @slotStart, @slotExpectedEnd, @windowEnd, @budget, 'active', @target)`,
      ),
      endToken: db.prepare('UPDATE tokens SET state = ?, ended_at = ?, outcome = ? WHERE token_id = ?'),
      endedRuns: db.prepare(
        `SELECT kind, vm, job, granted_at, ended_at, state, outcome FROM tokens
         WHERE host = ? AND state != 'active' ORDER BY ended_at DESC LIMIT ?`,
      ),
      vmEndedRuns: db.prepare(
        `SELECT kind, vm, job, granted_at, ended_at, state, outcome FROM tokens
         WHERE vm = ? AND state != 'active' ORDER BY ended_at DESC LIMIT ?`,
      ),
      insertHistory: db.prepare(
        `INSERT INTO history (at, type, host, vm, job, kind, token_id, fencing, request_id, detail)
         VALUES (@at, @type, @host, @vm, @job, @kind, @tokenId, @fencing, @requestId, @detail)`,
      ),
      upsertAgent: db.prepare(
        `INSERT INTO agents (vm, host, agent_version, hostname, jobs, last_hello)
         VALUES (@vm, @host, @agentVersion, @hostname, @jobs, @lastHelloAt)
         ON CONFLICT (vm) DO UPDATE SET host = excluded.host, agent_version = excluded.agent_version,
           hostname = excluded.hostname, jobs = excluded.jobs, last_hello = excluded.last_hello`,
      ),
    };
    this.commitTransaction = this.db.transaction((events: readonly LessorEvent[]) => this.apply(events));
  }

  private apply(events: readonly LessorEvent[]): HistoryRecord[] {
    const s = this.statements;
    const records: HistoryRecord[] = [];
    for (const e of events) {
      switch (e.type) {
        case 'host-added':
          s.upsertHost.run({ name: e.host, policy: JSON.stringify(e.policy) });
          break;
        case 'granted': {
          const l = e.lease;
          s.insertToken.run({
            ...l,
            slotStart: l.slot.start,
            slotExpectedEnd: l.slot.expectedEnd,
            windowEnd: l.slot.windowEnd,
            budget: JSON.stringify(l.budget),
            target: l.target ?? '',
          });
          s.setFencing.run(l.fencing, l.host);
          break;
        }
        case 'released':
        case 'expired':
        case 'revoked':
          s.endToken.run(e.type, e.at, e.type === 'released' ? JSON.stringify(e.outcome) : null, e.lease.tokenId);
          break;
        case 'host-paused':
          s.setPaused.run(1, e.reason, e.host);
          break;
        case 'host-resumed':
          s.setPaused.run(0, '', e.host);
          break;
        case 'policy-changed':
          s.setPolicy.run(JSON.stringify(e.policy), e.host);
          break;
        default:
          break;
      }
      const type = HISTORY_TYPE[e.type];
      if (type) {
        const fields = historyFields(e);
        const info = s.insertHistory.run({ type, ...fields });
        records.push({ seq: Number(info.lastInsertRowid), type, ...fields });
      }
    }
    return records;
  }

  async commit(events: readonly LessorEvent[]): Promise<HistoryRecord[]> {
    return this.commitSync(events);
  }

  /** commit(), done before returning: better-sqlite3 commits (and fsyncs) synchronously. */
  commitSync(events: readonly LessorEvent[]): HistoryRecord[] {
    if (events.length === 0) return [];
    return this.commitTransaction(events);
  }

  async load(endedSince: number) {
    return this.loadSync(endedSince);
  }

  /** load(), done before returning. */
  loadSync(endedSince: number) {
    const hosts: HostRecord[] = (
      this.db.prepare('SELECT * FROM hosts').all() as {
        name: string;
        fencing: number;
        paused: number;
        pause_reason: string;
        policy: string;
      }[]
    ).map((r) => ({
      name: r.name,
      fencing: r.fencing,
      paused: r.paused === 1,
      pauseReason: r.pause_reason,
      policy: JSON.parse(r.policy) as HostPolicy,
    }));
    const leases: Lease[] = (this.db.prepare("SELECT * FROM tokens WHERE state = 'active'").all() as TokenRow[]).map(
      (r) => ({
        tokenId: r.token_id,
        requestId: r.request_id,
        fencing: r.fencing,
        kind: r.kind,
        host: r.host,
        vm: r.vm,
        job: r.job,
        priority: r.priority,
        ttlMs: r.ttl_ms,
        grantedAt: r.granted_at,
        expiresAt: 0,
        slot: { start: r.slot_start, expectedEnd: r.slot_expected_end, windowEnd: r.window_end },
        budget: JSON.parse(r.budget),
        ...(r.target ? { target: r.target } : {}),
      }),
    );
    const ended: EndedRequest[] = (
      this.db
        .prepare(
          "SELECT request_id, token_id, state, ended_at FROM tokens WHERE state != 'active' AND ended_at >= ? ORDER BY ended_at",
        )
        .all(endedSince) as { request_id: string; token_id: string; state: EndState; ended_at: number }[]
    ).map((r) => ({ requestId: r.request_id, tokenId: r.token_id, state: r.state, endedAt: r.ended_at }));
    return { hosts, leases, ended, agents: this.agents() };
  }

  async history(query: HistoryQuery): Promise<HistoryRecord[]> {
    const where: string[] = ['seq > @afterSeq'];
    if (query.host) where.push('host = @host');
    if (query.vm) where.push('vm = @vm');
    if (query.since) where.push('at >= @since');
    // The types are known names (validated at the edge), one placeholder each so the statement is reused.
    const types = query.types ?? [];
    if (types.length) where.push(`type IN (${types.map((_, i) => `@type${i}`).join(', ')})`);
    const sql = `SELECT seq, at, type, host, vm, job, kind, token_id AS tokenId, fencing, request_id AS requestId, detail
         FROM history WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`;
    // A few shapes of query (one per filter combination and number of types): prepare each once.
    let statement = this.historyQueries.get(sql);
    if (!statement) this.historyQueries.set(sql, (statement = this.db.prepare(sql)));
    const rows = statement.all({
      afterSeq: query.afterSeq ?? 0,
      host: query.host,
      vm: query.vm,
      since: query.since,
      limit: query.limit,
      ...Object.fromEntries(types.map((t, i) => [`type${i}`, t])),
    }) as HistoryRecord[];
    return rows.reverse();
  }

  endedRuns(host: string, limit: number): EndedRun[] {
    return endedRunsOf(this.statements.endedRuns.all(host, limit));
  }

  vmEndedRuns(vm: string, limit: number): EndedRun[] {
    return endedRunsOf(this.statements.vmEndedRuns.all(vm, limit));
  }

  async compactHistory(step: CompactionStep): Promise<{ history: number; tokens: number }> {
    return this.compaction.step(step);
  }

  lastSuccesses(): LastSuccess[] {
    return this.db
      .prepare(
        `SELECT host, kind, vm, job, MAX(ended_at) AS endedAt FROM tokens
         WHERE state = 'released' AND json_extract(outcome, '$.success') = 1 GROUP BY host, kind, vm, job`,
      )
      .all() as LastSuccess[];
  }

  agents(): AgentRecord[] {
    return (
      this.db.prepare('SELECT * FROM agents').all() as {
        vm: string;
        host: string;
        agent_version: string;
        hostname: string;
        jobs: string;
        last_hello: number;
      }[]
    ).map((r) => ({
      vm: r.vm,
      host: r.host,
      agentVersion: r.agent_version,
      hostname: r.hostname,
      jobs: JSON.parse(r.jobs),
      lastHelloAt: r.last_hello,
    }));
  }

  async saveAgent(agent: AgentRecord): Promise<void> {
    this.statements.upsertAgent.run({ ...agent, jobs: JSON.stringify(agent.jobs) });
  }

  close(): void {
    this.db.close();
  }
}

/**
 * The durable store's interface. The coordinator commits every batch of lessor events through it before
 * answering, and loads its state from it at start. SQLite implements it (sqlite-store.ts); the domain
 * never sees which store it runs on.
 */
import type { LessorEvent } from '../domain/events';
import type { EndState, Outcome, TokenKind } from '../domain/lease';
import type { LessorSnapshot } from '../domain/lessor';
import type { CompactionStep } from './history-compaction';

export type HistoryType =
  | 'GRANTED'
  | 'RENEWED'
  | 'RELEASED'
  | 'EXPIRED'
  | 'REVOKED'
  | 'DENIED'
  | 'CANCELLED'
  | 'HOST_PAUSED'
  | 'HOST_RESUMED'
  | 'POLICY_CHANGED'
  | 'RESTORED'
  | 'QUIESCED'
  | 'QUIESCE_FAILED'
  | 'THAWED'
  | 'VM_FROZEN'
  | 'VM_THAWED'
  | 'VM_MIGRATING'
  | 'VM_MIGRATED';

export interface HistoryRecord {
  seq: number;
  at: number;
  type: HistoryType;
  host: string;
  vm: string;
  job: string;
  kind: TokenKind | '';
  tokenId: string;
  fencing: number;
  requestId: string;
  detail: string;
}

export interface HistoryQuery {
  host?: string;
  vm?: string;
  /** Newest events, at most this many, returned oldest first. */
  limit: number;
  afterSeq?: number;
  /** Only events of these types; absent or empty: every type. */
  types?: readonly HistoryType[];
  /** Only events at or after this wall-clock time, Unix ms. */
  since?: number;
}

/** What an agent declared in its last hello. `jobs` is stored as given on the wire. */
export interface AgentRecord {
  vm: string;
  host: string;
  agentVersion: string;
  hostname: string;
  jobs: unknown[];
  lastHelloAt: number;
}

/** A token that ended, as the planner learns from it: when its run started, and how it ended. */
export interface EndedRun {
  kind: TokenKind;
  vm: string;
  job: string;
  grantedAt: number;
  endedAt: number;
  state: EndState;
  /** Released tokens: what the holder said of its run. */
  outcome?: Outcome;
}

/** The newest successful run of a VM's job: when its token was released, Clock ms. */
export interface LastSuccess {
  host: string;
  kind: TokenKind;
  vm: string;
  job: string;
  endedAt: number;
}

/** How much history the store keeps (coordinator.yaml `history`); what tokens and planning need is kept regardless. */
export interface HistoryRetention {
  keepDays: number;
  /** History rows at most; ended tokens are bounded by age alone. */
  maxRows: number;
}

/**
 * What the coordinator loads, commits and reads. Loading, committing and history queries are asynchronous
 * (etcd is a network away); the planner's and metrics' small reads are answered from what the store holds at
 * hand, so they stay synchronous.
 */
export interface Store {
  /** What it writes to, for people: 'the database', 'etcd (no quorum, or out of reach)'. */
  readonly name: string;
  /** The state to restore: hosts, active leases, and request ids that ended since `endedSince`. */
  load(endedSince: number): Promise<LessorSnapshot & { agents: AgentRecord[] }>;
  /** Commits a batch atomically and durably. Resolves with the history records it appended; rejects on failure. */
  commit(events: readonly LessorEvent[]): Promise<HistoryRecord[]>;
  history(query: HistoryQuery): Promise<HistoryRecord[]>;
  /** The host's `limit` most recently ended tokens, oldest first. */
  endedRuns(host: string, limit: number): EndedRun[];
  /** The VM's `limit` most recently ended tokens on any host, oldest first (the dashboard's VM view). */
  vmEndedRuns(vm: string, limit: number): EndedRun[];
  /** The newest successful run of each VM, job and kind (metrics' last-success timestamps). */
  lastSuccesses(): LastSuccess[];
  /** One small batch of retention (history-compaction.ts). @returns the rows removed; 0 and 0 when done. */
  compactHistory(step: CompactionStep): Promise<{ history: number; tokens: number }>;
  saveAgent(agent: AgentRecord): Promise<void>;
  agents(): AgentRecord[];
  close(): void;
}

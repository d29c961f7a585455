/**
 * The coordinator's application service: runs lessor operations, group-commits the events they cause to
 * the store before anyone is answered, drives the one deadline timer, and tells waiters and subscribers
 * what was committed. The RPC adapters call only this.
 */
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import { CoordinatorStoppingError, StoreUnavailableError } from '../domain/errors';
import type { DenyReason, LessorEvent, QuiesceEvent } from '../domain/events';
import type { AcquireInput, Lease, Outcome } from '../domain/lease';
import { type HostView, Lessor, type IdSource, type LessorOptions, type WaitingInfo } from '../domain/lessor';
import type { HostPolicy } from '../domain/policy';
import type { LoadView, PlannedRun } from '../domain/start-gate';
import type { EndedRun, HistoryRecord, Store } from '../store/store';

/** Receives the fate of one waiting acquire. */
export interface Waiter {
  queued(info: WaitingInfo): void;
  granted(lease: Lease): void;
  denied(reason: DenyReason, message: string): void;
  /** The coordinator lost the request: its store failed. */
  failed(error: Error): void;
}

export type CommitListener = (events: readonly LessorEvent[], records: readonly HistoryRecord[]) => void;

/** Told when commits start failing (with why) and when they succeed again (undefined). */
export type StoreHealthListener = (failure: string | undefined) => void;

export interface CoordinatorDeps {
  store: Store;
  clock: Clock;
  ids: IdSource;
  log: Logger;
  /** The host this coordinator runs on: always known, used when a caller names none. */
  defaultHost: string;
  lessorOptions?: LessorOptions;
  /** Minimum time between two QUEUED updates to the waiters of one host. Default 250 ms. */
  queueUpdateIntervalMs?: number;
  /**
   * After a failed commit: 'reload' the committed state and go on (one SQLite file: the failure is the
   * disk's, and the state on it is the truth), or 'halt': refuse everything from then on, because another
   * process may own the state now (a cluster leader whose fenced commit failed steps down).
   */
  afterFailedCommit?: 'reload' | 'halt';
}

interface Batch {
  events: LessorEvent[];
  settle: { resolve(): void; reject(e: Error): void }[];
}

export class Coordinator {
  private lessor!: Lessor;
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly listeners = new Set<CommitListener>();
  private readonly queueUpdates = new Map<string, NodeJS.Timeout>();
  private readonly lastQueueUpdate = new Map<string, number>();
  private batch: Batch | undefined;
  /** A commit is in flight: the next batch waits for it, so that batches are committed in order. */
  private committing: Promise<void> | undefined;
  /** The batch of that commit. */
  private inFlight: Batch | undefined;
  private halted: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Why the last commit failed, until one succeeds: logged and told to the health listeners once per outage. */
  private failure: string | undefined;
  private readonly storeListeners = new Set<StoreHealthListener>();

  private constructor(private readonly deps: CoordinatorDeps) {}

  /** Loads the committed state and records the restored tokens. Rejects when the store cannot be read. */
  static async open(deps: CoordinatorDeps): Promise<Coordinator> {
    const coordinator = new Coordinator(deps);
    await coordinator.loadFromStore();
    return coordinator;
  }

  get defaultHost(): string {
    return this.deps.defaultHost;
  }

  /** Read-only access to the domain for queries. */
  get state(): Pick<
    Lessor,
    'hostNames' | 'hasHost' | 'host' | 'activeLeases' | 'lease' | 'holder' | 'waiting' | 'targetViews'
  > {
    return this.lessor;
  }

  onCommitted(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Why the store cannot commit now (disk full, read-only), or undefined while it can. */
  get storeFailure(): string | undefined {
    return this.failure;
  }

  onStoreHealth(listener: StoreHealthListener): () => void {
    this.storeListeners.add(listener);
    return () => this.storeListeners.delete(listener);
  }

  /**
   * Asks for a token on behalf of a waiter. Resolves once the outcome so far is durable: the waiter has
   * then been told GRANTED or DENIED, or will be told QUEUED and later one of those. Returns a function
   * that withdraws this waiter (and the request, when no other waiter holds it).
   */
  async acquire(input: AcquireInput, waiter: Waiter): Promise<() => void> {
    this.assertRunning();
    const { result, events } = this.lessor.acquire(input);
    let withdraw = () => {};
    if (result.status === 'queued') {
      const set = this.waiters.get(input.requestId) ?? new Set();
      set.add(waiter);
      this.waiters.set(input.requestId, set);
      withdraw = () => this.withdraw(input.requestId, waiter);
      this.scheduleQueueUpdate(input.host, true);
    }
    await this.submit(events);
    if (result.status === 'granted') waiter.granted(result.lease);
    else if (result.status === 'denied') waiter.denied(result.reason, result.message);
    return withdraw;
  }

  /** @throws TokenNotFoundError, TokenEndedError, StaleFencingTokenError, StoreUnavailableError */
  async renew(tokenId: string, fencing: number): Promise<Lease> {
    this.assertRunning();
    const { lease, events } = this.lessor.renew(tokenId, fencing);
    try {
      await this.submit(events);
    } catch (e) {
      // Not on a halted cluster leader: another member may own the token now.
      if (!(e instanceof StoreUnavailableError) || this.stopped || this.halted) throw e;
      // A renewal need not be durable: a restart gives every restored lease a fresh TTL anyway. So when the
      // database cannot be written (disk full, read-only), the holder goes on: its lease is renewed in
      // memory on the state just reloaded from the store; only the RENEWED history record is lost.
      return this.lessor.renew(tokenId, fencing).lease;
    }
    return lease;
  }

  async release(tokenId: string, fencing: number, outcome: Outcome): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.release(tokenId, fencing, outcome));
  }

  async revoke(tokenId: string, reason: string): Promise<Lease> {
    this.assertRunning();
    const lease = this.lessor.lease(tokenId);
    await this.submit(this.lessor.revoke(tokenId, reason));
    return lease!;
  }

  async pause(host: string, reason: string): Promise<HostView> {
    this.assertRunning();
    await this.submit(this.lessor.pause(host, reason));
    return this.lessor.host(host);
  }

  async resume(host: string): Promise<HostView> {
    this.assertRunning();
    await this.submit(this.lessor.resume(host));
    return this.lessor.host(host);
  }

  async setPolicy(host: string, patch: Partial<HostPolicy>): Promise<HostPolicy> {
    this.assertRunning();
    await this.submit(this.lessor.setPolicy(host, patch));
    return this.lessor.host(host).policy;
  }

  // The start gate's inputs (domain/start-gate.ts): soft state, not stored, and granting what they free.

  /** The plan a host's grants follow. @throws HostNotFoundError */
  async setPlan(host: string, runs: readonly PlannedRun[]): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.setPlan(host, runs));
  }

  /** A VM's latest foreground load (undefined: no longer known). @throws HostNotFoundError */
  async setVmLoad(host: string, vm: string, load: LoadView | undefined): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.setVmLoad(host, vm, load));
  }

  /** The host's own latest load. @throws HostNotFoundError */
  async setHostLoad(host: string, load: LoadView | undefined): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.setHostLoad(host, load));
  }

  /** A freeze of a VM by the hypervisor's own tools (frozen, for holdMs at most), or its thaw. @throws HostNotFoundError */
  async freezeNotice(
    host: string,
    vm: string,
    notice: { frozen: boolean; source: string; holdMs: number },
  ): Promise<void> {
    this.assertRunning();
    await this.submit(
      notice.frozen ? this.lessor.freezeVm(host, vm, notice.source, notice.holdMs) : this.lessor.thawVm(host, vm),
    );
  }

  /** A migration of a VM to or from a host started (placement). @throws HostNotFoundError */
  async migrationStarted(host: string, vm: string, name: string, direction: 'in' | 'out'): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.migrationStarted(host, vm, name, direction));
  }

  /** A migration ended: arrived, left (its requests here are denied) or failed. @throws HostNotFoundError */
  async migrationEnded(
    host: string,
    vm: string,
    name: string,
    direction: 'in' | 'out',
    outcome: 'arrived' | 'left' | 'failed',
  ): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.migrationEnded(host, vm, name, direction, outcome));
  }

  /** Makes sure a host exists, e.g. when an agent of a new host says hello. */
  async ensureHost(host: string): Promise<void> {
    this.assertRunning();
    await this.submit(this.lessor.ensureHost(host));
  }

  /** Records what became of a guest's quiesce (quiesce-broker.ts) in the history; resolves once durable. */
  async record(event: QuiesceEvent): Promise<void> {
    this.assertRunning();
    await this.submit([event]);
  }

  history(query: Parameters<Store['history']>[0]): Promise<HistoryRecord[]> {
    return this.deps.store.history(query);
  }

  /**
   * Follows the history: first what was committed after `query.afterSeq` (catchUp true; none when absent),
   * then each commit's records as they come, in order and each once, whatever commits while the catch-up is
   * read. Records of other hosts than `query.host` are left out. @returns the unsubscribe function.
   */
  watchHistory(
    query: { host?: string; afterSeq?: number; limit: number },
    deliver: (records: readonly HistoryRecord[], catchUp: boolean) => void,
    failed: (error: unknown) => void,
  ): () => void {
    let last = query.afterSeq ?? 0;
    let live: HistoryRecord[] | undefined = query.afterSeq === undefined ? undefined : [];
    const pass = (records: readonly HistoryRecord[], catchUp: boolean) => {
      const fresh = records.filter((r) => r.seq > last && (!query.host || r.host === query.host));
      if (fresh.length === 0) return;
      last = fresh[fresh.length - 1].seq;
      deliver(fresh, catchUp);
    };
    // Subscribed before the read, so that nothing committed in between is lost; held until the read is in.
    const unsubscribe = this.onCommitted((_events, records) => (live ? live.push(...records) : pass(records, false)));
    if (query.afterSeq === undefined) return unsubscribe;
    this.history(query).then(
      (records) => {
        const held = live ?? [];
        live = undefined;
        pass(records, true);
        pass(held, true);
      },
      (e) => {
        unsubscribe();
        failed(e);
      },
    );
    return unsubscribe;
  }

  /** The host's most recently ended tokens, oldest first: what the planner learns durations from. */
  endedRuns(host: string, limit: number): EndedRun[] {
    return this.deps.store.endedRuns(host, limit);
  }

  /** The VM's most recently ended tokens, oldest first: its last runs, for people. */
  vmEndedRuns(vm: string, limit: number): EndedRun[] {
    return this.deps.store.vmEndedRuns(vm, limit);
  }

  /**
   * Commits what was decided but not yet committed (its callers are answered), stops the timers, and denies
   * every waiter with COORDINATOR_STOPPING so that it retries elsewhere or later. From the call on every
   * operation is refused with CoordinatorStoppingError; once resolved, the store can be closed. Idempotent.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const t of this.queueUpdates.values()) clearTimeout(t);
    while (this.committing || this.batch) await (this.committing ?? this.flush());
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) {
      for (const w of set)
        w.denied('COORDINATOR_STOPPING', 'ask again with the same request id, here or at another coordinator');
    }
  }

  // ---- internals ----

  private assertRunning(): void {
    if (this.halted) throw new StoreUnavailableError(this.halted, this.deps.store.name);
    if (this.stopped) throw new CoordinatorStoppingError();
  }

  /** Queues events for the next group commit and resolves when they are durable. */
  private submit(events: LessorEvent[]): Promise<void> {
    if (events.length === 0) {
      // Nothing to commit, but a new waiting request may bring its latest start as a deadline.
      this.armTimer();
      // And the answer may rest on what is still being committed: a retried acquire whose grant is in flight
      // is told GRANTED only once that grant is durable, and fails with it.
      const pending = this.batch ?? this.inFlight;
      if (!pending) return Promise.resolve();
      return new Promise((resolve, reject) => pending.settle.push({ resolve, reject }));
    }
    if (!this.batch) {
      this.batch = { events: [], settle: [] };
      // One transaction for everything decided in this turn of the event loop: the fsync is shared. A batch
      // formed while a commit is in flight goes next, when that one is done.
      if (!this.committing) setImmediate(() => void this.flush());
    }
    this.batch.events.push(...events);
    const batch = this.batch;
    return new Promise((resolve, reject) => batch.settle.push({ resolve, reject }));
  }

  private flush(): Promise<void> {
    const batch = this.batch;
    // stop() flushed it already, or it waits for the commit in flight.
    if (!batch || this.committing) return this.committing ?? Promise.resolve();
    this.batch = undefined;
    this.inFlight = batch;
    this.committing = this.commit(batch).finally(() => {
      this.committing = undefined;
      this.inFlight = undefined;
      if (this.batch) setImmediate(() => void this.flush());
    });
    return this.committing;
  }

  private async commit(batch: Batch): Promise<void> {
    let records: HistoryRecord[];
    try {
      records = await this.deps.store.commit(batch.events);
    } catch (e) {
      // Said once per outage, not once per refused call.
      if (this.failure === undefined) {
        this.deps.log.error(
          this.deps.afterFailedCommit === 'halt'
            ? `cannot write ${this.deps.store.name}: every call is refused with UNAVAILABLE from now on`
            : `cannot write ${this.deps.store.name}: grants and releases are refused with UNAVAILABLE until it can; renewals go on`,
          { error: e as Error },
        );
        this.failure = `cannot write ${this.deps.store.name}: ${(e as Error).message}`;
        this.tellStoreHealth();
      }
      const failure = new StoreUnavailableError(e, this.deps.store.name);
      // What was decided after this batch rests on it: it is dropped with it.
      const dropped = [batch, ...(this.batch ? [this.batch] : [])];
      this.batch = undefined;
      for (const b of dropped) for (const s of b.settle) s.reject(failure);
      this.failAllWaiters(failure);
      if (this.deps.afterFailedCommit === 'halt') {
        this.halted = e as Error;
        clearTimeout(this.timer);
      } else await this.loadFromStore(true);
      return;
    }
    if (this.failure !== undefined) {
      this.failure = undefined;
      this.deps.log.info('the database can be written again: serving every request');
      this.tellStoreHealth();
    }
    for (const s of batch.settle) s.resolve();
    this.dispatch(batch.events, records);
    // Re-arm once per batch rather than once per call: nextDeadline() walks every lease.
    this.armTimer();
  }

  private tellStoreHealth(): void {
    for (const listener of this.storeListeners) listener(this.failure);
  }

  private dispatch(events: readonly LessorEvent[], records: readonly HistoryRecord[]): void {
    for (const e of events) {
      if (e.type === 'granted' || e.type === 'denied') {
        const requestId = e.type === 'granted' ? e.lease.requestId : e.request.requestId;
        const set = this.waiters.get(requestId);
        if (!set) continue;
        this.waiters.delete(requestId);
        for (const w of set) {
          if (e.type === 'granted') w.granted(e.lease);
          else w.denied(e.reason, e.message);
        }
      }
      if (
        e.type === 'granted' ||
        e.type === 'released' ||
        e.type === 'expired' ||
        e.type === 'revoked' ||
        e.type === 'cancelled' ||
        e.type === 'denied' ||
        e.type === 'host-resumed' ||
        e.type === 'policy-changed' ||
        e.type === 'vm-frozen' ||
        e.type === 'vm-thawed' ||
        // Waiters hear at once that their VM is migrating, and that it is no longer.
        e.type === 'vm-migrating' ||
        e.type === 'vm-migrated'
      ) {
        this.scheduleQueueUpdate('lease' in e ? e.lease.host : 'request' in e ? e.request.host : e.host, false);
      }
    }
    for (const l of this.listeners) {
      try {
        l(events, records);
      } catch (err) {
        this.deps.log.error('commit listener failed', { error: err as Error });
      }
    }
  }

  /** Sends each waiter of a host its position and estimate, at most every queueUpdateIntervalMs. */
  private scheduleQueueUpdate(host: string, soon: boolean): void {
    if (this.queueUpdates.has(host) || this.stopped) return;
    const interval = this.deps.queueUpdateIntervalMs ?? 250;
    const since = this.deps.clock.now() - (this.lastQueueUpdate.get(host) ?? 0);
    const delay = soon ? 0 : Math.max(0, interval - since);
    const timer = setTimeout(() => {
      this.queueUpdates.delete(host);
      this.lastQueueUpdate.set(host, this.deps.clock.now());
      for (const info of this.lessor.waiting(host)) {
        for (const w of this.waiters.get(info.request.requestId) ?? []) w.queued(info);
      }
    }, delay);
    this.queueUpdates.set(host, timer);
  }

  private withdraw(requestId: string, waiter: Waiter): void {
    const set = this.waiters.get(requestId);
    if (!set?.delete(waiter)) return;
    if (set.size > 0) return;
    this.waiters.delete(requestId);
    if (this.stopped || !this.lessor.isWaiting(requestId)) return;
    this.submit(this.lessor.cancel(requestId)).catch((e) =>
      this.deps.log.warn('could not record a withdrawn request', { requestId, error: e as Error }),
    );
  }

  private armTimer(): void {
    if (this.stopped || this.halted) return;
    const next = this.lessor.nextDeadline();
    clearTimeout(this.timer);
    this.timer = undefined;
    if (next === undefined) return;
    // setTimeout can fire a little early; tick() only acts on deadlines that really passed, and re-arms.
    const delay = Math.min(Math.max(0, next - this.deps.clock.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => this.onDeadline(), delay);
  }

  private onDeadline(): void {
    this.timer = undefined;
    const events = this.lessor.tick();
    for (const e of events) {
      if (e.type === 'expired')
        this.deps.log.info('token expired', { token: e.lease.tokenId, host: e.lease.host, vm: e.lease.vm });
      if (e.type === 'revoked') this.deps.log.info('token revoked', { token: e.lease.tokenId, reason: e.reason });
    }
    this.submit(events).catch(() => {
      // flush() already logged the failure and reloaded the committed state.
    });
    this.armTimer();
  }

  private failAllWaiters(error: Error): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const w of set) w.failed(error);
  }

  /**
   * (Re)builds the lessor from the committed state: at start-up, and after a failed commit to drop what
   * was not committed. Reading the store must work (else this throws, and the process exits); recording
   * the restored leases must too at start-up, but not after a failed commit, where the database may be
   * full or read-only: the state read is the committed one, only its RESTORED records are missing.
   */
  private async loadFromStore(afterFailedCommit = false): Promise<void> {
    const { clock, ids, store, lessorOptions, defaultHost } = this.deps;
    const retention = lessorOptions?.endedRetentionMs ?? 24 * 3_600_000;
    const snapshot = await store.load(clock.now() - retention);
    this.lessor = new Lessor(clock, ids, lessorOptions);
    const events = [...this.lessor.restore(snapshot), ...this.lessor.ensureHost(defaultHost)];
    let records: HistoryRecord[] = [];
    try {
      records = await store.commit(events);
    } catch (e) {
      if (!afterFailedCommit) throw e;
    }
    if (!afterFailedCommit && snapshot.leases.length > 0)
      this.deps.log.info('restored active tokens', { count: snapshot.leases.length });
    this.dispatch(events, records);
    this.armTimer();
  }
}

/**
 * The lessor owns every host's active leases and wait queue and enforces the admission rule. It does no
 * I/O: each operation reads the Clock, changes the in-memory state and returns the events it caused,
 * which the caller must commit to the store before answering anyone.
 */
import type { Clock } from '../../common/util/clock';
import { type TargetRule, compareWaiting, selectGrants, targetAdmits } from './admission';
import {
  HostNotFoundError,
  RequestConflictError,
  StaleFencingTokenError,
  TokenEndedError,
  TokenNotFoundError,
} from './errors';
import type { LessorEvent } from './events';
import {
  type AcquireInput,
  type EndState,
  type EndedRequest,
  type Lease,
  type Outcome,
  type PendingRequest,
} from './lease';
import { DEFAULT_POLICY, type HostPolicy, applyPolicyPatch, completePolicy } from './policy';
import { reducedBudget } from './budget-controller';
import { describeWait, estimateStarts } from './queue-estimate';
import {
  type TargetLimits,
  type TargetLoad,
  type TargetView,
  addLoad,
  describeTargetFull,
  targetIoBudget,
  targetOf,
} from './targets';
import {
  type LoadView,
  type PlannedRun,
  type StartDecision,
  type VmFreeze,
  type VmMigration,
  indexPlan,
  startDecision,
} from './start-gate';

export interface IdSource {
  newId(): string;
}

export interface HostRecord {
  name: string;
  fencing: number;
  paused: boolean;
  pauseReason: string;
  policy: HostPolicy;
}

export interface HostView extends HostRecord {
  activeGuest: number;
  activeHypervisor: number;
  queued: number;
  /** The host's own last load sample, when the coordinator samples it. */
  hostLoad?: LoadView;
}

export interface WaitingInfo {
  request: PendingRequest;
  position: number;
  /** 0 when it cannot be estimated (host paused, or held until its VM or host is less busy). */
  estimatedStart: number;
  waitingFor: string;
  /** Held back by the start gate (its planned slot, or the load), not by the admission rule. */
  held: boolean;
  /** TARGET_FULL: the shared target it waits for room on (its use is on every host); absent otherwise. */
  targetFull?: string;
}

export type AcquireResult =
  | { status: 'granted'; lease: Lease }
  | { status: 'queued'; request: PendingRequest }
  | { status: 'denied'; reason: 'WINDOW_CLOSED' | 'REQUEST_ID_USED'; message: string };

/** The durable state a lessor starts from after a restart. */
export interface LessorSnapshot {
  hosts: HostRecord[];
  leases: Lease[];
  ended: EndedRequest[];
}

export interface LessorOptions {
  /** Policy of hosts seen for the first time. */
  defaultPolicy?: HostPolicy;
  /** How long an ended request id is remembered, so that retries of it are refused. Default 24 h. */
  endedRetentionMs?: number;
  /**
   * At most this many ended request ids are remembered (the oldest are forgotten first), so that memory
   * stays bounded under any grant rate. Default 100,000: days of real backups, minutes of a benchmark.
   */
  maxEndedRequests?: number;
  /** Shared backup targets and their limits, held across every host (targets.ts). Default none. */
  targets?: readonly TargetLimits[];
}

interface HostState extends HostRecord {
  active: Map<string, Lease>;
  queue: PendingRequest[];
  /** What the start gate knows: soft state, not stored (plans and load reports rebuild it). */
  conditions: {
    plan: Map<string, PlannedRun[]>;
    vmLoad: Map<string, LoadView>;
    hostLoad?: LoadView;
    frozen: Map<string, VmFreeze>;
    migrating: Map<string, VmMigration>;
  };
}

const copyLease = (l: Lease): Lease => ({ ...l, slot: { ...l.slot }, budget: { ...l.budget } });

const OPEN = (): StartDecision => ({ start: true, forced: false });

const emptyConditions = (): HostState['conditions'] => ({
  plan: new Map(),
  vmLoad: new Map(),
  frozen: new Map(),
  migrating: new Map(),
});

export class Lessor {
  private readonly hosts = new Map<string, HostState>();
  private readonly leases = new Map<string, Lease>();
  private readonly activeByRequest = new Map<string, Lease>();
  private readonly pending = new Map<string, PendingRequest>();
  private readonly endedByRequest = new Map<string, EndedRequest>();
  private readonly endedByToken = new Map<string, EndedRequest>();
  private readonly defaultPolicy: HostPolicy;
  private readonly endedRetentionMs: number;
  private readonly maxEndedRequests: number;
  private readonly targets: ReadonlyMap<string, TargetLimits>;
  /** What the active tokens of every host hold of each target, kept by track() and end(). */
  private readonly targetLoad = new Map<string, TargetLoad>();
  private seq = 0;

  constructor(
    private readonly clock: Clock,
    private readonly ids: IdSource,
    options: LessorOptions = {},
  ) {
    this.defaultPolicy = options.defaultPolicy ?? DEFAULT_POLICY;
    this.endedRetentionMs = options.endedRetentionMs ?? 24 * 3_600_000;
    this.maxEndedRequests = options.maxEndedRequests ?? 100_000;
    this.targets = new Map((options.targets ?? []).map((t) => [t.name, { ...t }]));
  }

  /**
   * Loads the durable state after a restart. Every restored lease gets a fresh TTL from now, as etcd does
   * on a leader change: its holder can go on renewing it, and nothing conflicting is granted meanwhile.
   */
  restore(snapshot: LessorSnapshot): LessorEvent[] {
    const now = this.clock.now();
    for (const h of snapshot.hosts)
      this.hosts.set(h.name, { ...h, active: new Map(), queue: [], conditions: emptyConditions() });
    for (const e of snapshot.ended) this.remember(e);
    const events: LessorEvent[] = [];
    for (const stored of snapshot.leases) {
      const lease = { ...copyLease(stored), expiresAt: now + stored.ttlMs };
      const host = this.hosts.get(lease.host);
      if (!host) throw new Error(`restored lease ${lease.tokenId} names unknown host ${lease.host}`);
      this.track(host, lease);
      events.push({ type: 'restored', at: now, lease: copyLease(lease) });
    }
    return events;
  }

  /** Makes sure a host exists (the coordinator's own host at start-up, or one named by a caller). */
  ensureHost(name: string): LessorEvent[] {
    if (this.hosts.has(name)) return [];
    const policy = { ...this.defaultPolicy };
    this.hosts.set(name, {
      name,
      fencing: 0,
      paused: false,
      pauseReason: '',
      policy,
      active: new Map(),
      queue: [],
      conditions: emptyConditions(),
    });
    return [{ type: 'host-added', at: this.clock.now(), host: name, policy: { ...policy } }];
  }

  /**
   * Asks for a token. Granted at once when the admission rule allows, queued otherwise. A request id that
   * is active or waiting returns that same grant or wait; one whose token ended is denied.
   * @throws RequestConflictError when the request id was used with another kind, host or VM.
   * @throws InvalidArgumentError naming `target` when it names no configured target.
   */
  acquire(input: AcquireInput): { result: AcquireResult; events: LessorEvent[] } {
    const now = this.clock.now();
    targetOf(input.target, this.targets);
    const active = this.activeByRequest.get(input.requestId);
    if (active) {
      this.checkSameRequest(input, active);
      return { result: { status: 'granted', lease: copyLease(active) }, events: [] };
    }
    const waiting = this.pending.get(input.requestId);
    if (waiting) {
      this.checkSameRequest(input, waiting);
      return { result: { status: 'queued', request: waiting }, events: [] };
    }
    const events = this.ensureHost(input.host);
    const request: PendingRequest = { ...input, queuedAt: now, seq: ++this.seq };
    const ended = this.endedByRequest.get(input.requestId);
    if (ended) {
      const message = `request_id ${input.requestId} already had token ${ended.tokenId}, which was ${ended.state}`;
      events.push({ type: 'denied', at: now, request, reason: 'REQUEST_ID_USED', message });
      return { result: { status: 'denied', reason: 'REQUEST_ID_USED', message }, events };
    }
    if (input.latestStart > 0 && input.latestStart <= now) {
      const message = `its window closed at ${new Date(input.latestStart).toISOString()} before it could start`;
      events.push({ type: 'denied', at: now, request, reason: 'WINDOW_CLOSED', message });
      return { result: { status: 'denied', reason: 'WINDOW_CLOSED', message }, events };
    }
    const host = this.hosts.get(input.host)!;
    this.enqueue(host, request);
    events.push(...this.pump(host));
    const granted = this.activeByRequest.get(input.requestId);
    const result: AcquireResult = granted
      ? { status: 'granted', lease: copyLease(granted) }
      : { status: 'queued', request };
    return { result, events };
  }

  /** Withdraws a waiting request. Does nothing when it is not waiting (granted meanwhile, or unknown). */
  cancel(requestId: string): LessorEvent[] {
    const request = this.pending.get(requestId);
    if (!request) return [];
    const host = this.hosts.get(request.host)!;
    this.dequeue(host, request);
    // The withdrawn request may have been what held the other kind back.
    return [{ type: 'cancelled', at: this.clock.now(), request }, ...this.pump(host)];
  }

  /**
   * Extends a lease by its TTL from now.
   * @throws TokenNotFoundError, TokenEndedError, StaleFencingTokenError
   */
  renew(tokenId: string, fencing: number): { lease: Lease; events: LessorEvent[] } {
    const lease = this.holderLease(tokenId, fencing);
    const now = this.clock.now();
    lease.expiresAt = now + lease.ttlMs;
    const copy = copyLease(lease);
    return { lease: copy, events: [{ type: 'renewed', at: now, lease: copy }] };
  }

  /**
   * Ends a lease at its holder's request and grants what was waiting for it.
   * @throws TokenNotFoundError, TokenEndedError, StaleFencingTokenError
   */
  release(tokenId: string, fencing: number, outcome: Outcome): LessorEvent[] {
    const lease = this.holderLease(tokenId, fencing);
    const host = this.end(lease, 'released');
    const released: LessorEvent = { type: 'released', at: this.clock.now(), lease: copyLease(lease), outcome };
    return [released, ...this.pumpAfterEnd([host], [lease])];
  }

  /**
   * Ends a lease by an administrator's decision.
   * @throws TokenNotFoundError, TokenEndedError
   */
  revoke(tokenId: string, reason: string): LessorEvent[] {
    const lease = this.activeLease(tokenId);
    const host = this.end(lease, 'revoked');
    return [
      { type: 'revoked', at: this.clock.now(), lease: copyLease(lease), reason },
      ...this.pumpAfterEnd([host], [lease]),
    ];
  }

  /** Stops new grants on a host; active tokens go on. @throws HostNotFoundError */
  pause(hostName: string, reason: string): LessorEvent[] {
    const host = this.hostState(hostName);
    if (host.paused && host.pauseReason === reason) return [];
    host.paused = true;
    host.pauseReason = reason;
    return [{ type: 'host-paused', at: this.clock.now(), host: hostName, reason }];
  }

  /** @throws HostNotFoundError */
  resume(hostName: string): LessorEvent[] {
    const host = this.hostState(hostName);
    if (!host.paused) return [];
    host.paused = false;
    host.pauseReason = '';
    return [{ type: 'host-resumed', at: this.clock.now(), host: hostName }, ...this.pump(host)];
  }

  /** @throws HostNotFoundError, InvalidArgumentError */
  setPolicy(hostName: string, patch: Partial<HostPolicy>): LessorEvent[] {
    const host = this.hostState(hostName);
    host.policy = applyPolicyPatch(host.policy, patch);
    return [
      { type: 'policy-changed', at: this.clock.now(), host: hostName, policy: { ...host.policy } },
      ...this.pump(host),
    ];
  }

  /** Replaces the plan a host's grants follow (start-gate.ts), and grants what it lets start. @throws HostNotFoundError */
  setPlan(hostName: string, runs: readonly PlannedRun[]): LessorEvent[] {
    const host = this.hostState(hostName);
    host.conditions.plan = indexPlan(runs);
    return this.pump(host);
  }

  /** A VM's latest foreground load, or undefined when it is no longer known. @throws HostNotFoundError */
  setVmLoad(hostName: string, vm: string, load: LoadView | undefined): LessorEvent[] {
    const host = this.hostState(hostName);
    if (load) host.conditions.vmLoad.set(vm, { ...load });
    else host.conditions.vmLoad.delete(vm);
    return this.pump(host);
  }

  /** The host's own latest load. @throws HostNotFoundError */
  setHostLoad(hostName: string, load: LoadView | undefined): LessorEvent[] {
    const host = this.hostState(hostName);
    host.conditions.hostLoad = load && { ...load };
    return this.pump(host);
  }

  /**
   * A VM frozen by the hypervisor's own tools: its GUEST grants wait for thawVm, at most `holdMs`. A freeze
   * of a VM already frozen (its agent saying it again after a reconnect) only moves the bound.
   * @throws HostNotFoundError
   */
  freezeVm(hostName: string, vm: string, source: string, holdMs: number): LessorEvent[] {
    const host = this.hostState(hostName);
    const now = this.clock.now();
    const current = host.conditions.frozen.get(vm);
    if (current) {
      current.until = now + holdMs;
      return [];
    }
    host.conditions.frozen.set(vm, { source, since: now, until: now + holdMs });
    return [
      {
        type: 'vm-frozen',
        at: now,
        host: hostName,
        vm,
        source,
        until: now + holdMs,
        guests: this.runningGuests(host, vm),
      },
    ];
  }

  /** The end of a VM's freeze; nothing when it is not frozen. @throws HostNotFoundError */
  thawVm(hostName: string, vm: string): LessorEvent[] {
    const host = this.hostState(hostName);
    return this.endFreeze(host, vm, false);
  }

  /**
   * A migration of `vm` to or from this host started: its HYPERVISOR requests wait until it ends. Nothing
   * when it is already known to migrate that way. @throws HostNotFoundError
   */
  migrationStarted(hostName: string, vm: string, name: string, direction: 'in' | 'out'): LessorEvent[] {
    const host = this.hostState(hostName);
    if (host.conditions.migrating.get(vm)?.direction === direction) return [];
    const at = this.clock.now();
    host.conditions.migrating.set(vm, { name, direction, since: at });
    const hypervisor = [...host.active.values()].filter((l) => l.kind === 'HYPERVISOR' && l.vm === vm).map(copyLease);
    return [{ type: 'vm-migrating', at, host: hostName, vm, name, direction, hypervisor }];
  }

  /**
   * A migration ended. A VM that `left` this host has its waiting requests here denied (VM_MIGRATED_AWAY) and
   * its tokens here revoked: there is nothing left here to back up. @throws HostNotFoundError
   */
  migrationEnded(
    hostName: string,
    vm: string,
    name: string,
    direction: 'in' | 'out',
    outcome: 'arrived' | 'left' | 'failed',
  ): LessorEvent[] {
    const host = this.hostState(hostName);
    const at = this.clock.now();
    const since = host.conditions.migrating.get(vm)?.since ?? at;
    host.conditions.migrating.delete(vm);
    const events: LessorEvent[] = [{ type: 'vm-migrated', at, host: hostName, vm, name, direction, outcome, since }];
    const ended: Lease[] = [];
    if (outcome === 'left') {
      for (const request of host.queue.filter((r) => r.vm === vm)) {
        this.dequeue(host, request);
        const message = `${name} migrated away from host ${hostName}: ask the coordinator of the host it runs on now`;
        events.push({ type: 'denied', at, request, reason: 'VM_MIGRATED_AWAY', message });
      }
      for (const lease of [...host.active.values()].filter((l) => l.vm === vm)) {
        this.end(lease, 'revoked');
        ended.push(lease);
        events.push({
          type: 'revoked',
          at,
          lease: copyLease(lease),
          reason: `${name} migrated away from host ${hostName}`,
        });
      }
    }
    return [...events, ...this.pumpAfterEnd([host], ended)];
  }

  /**
   * Acts on every deadline that has passed: expires unrenewed leases, revokes holders past their window's
   * end (unless policy allows overrun), denies requests whose latest start passed, then grants what that
   * freed. Call it when nextDeadline() is reached.
   */
  tick(): LessorEvent[] {
    const now = this.clock.now();
    const events: LessorEvent[] = [];
    const touched = new Set<HostState>();
    const ended: Lease[] = [];
    for (const lease of [...this.leases.values()]) {
      const host = this.hosts.get(lease.host)!;
      if (lease.expiresAt <= now || this.pastWindow(lease, host, now)) ended.push(lease);
      if (lease.expiresAt <= now) {
        this.end(lease, 'expired');
        events.push({ type: 'expired', at: now, lease: copyLease(lease) });
        touched.add(host);
      } else if (this.pastWindow(lease, host, now)) {
        this.end(lease, 'revoked');
        const reason = `its window ended at ${new Date(lease.slot.windowEnd).toISOString()}`;
        events.push({ type: 'revoked', at: now, lease: copyLease(lease), reason });
        touched.add(host);
      }
    }
    for (const request of [...this.pending.values()]) {
      if (request.latestStart > 0 && request.latestStart <= now) {
        const host = this.hosts.get(request.host)!;
        this.dequeue(host, request);
        const message = `its window closed at ${new Date(request.latestStart).toISOString()} before it could start`;
        events.push({ type: 'denied', at: now, request, reason: 'WINDOW_CLOSED', message });
        touched.add(host);
      }
    }
    for (const [requestId, e] of this.endedByRequest) {
      if (e.endedAt > now - this.endedRetentionMs) break; // insertion order is end order
      this.endedByRequest.delete(requestId);
      this.endedByToken.delete(e.tokenId);
    }
    for (const host of this.hosts.values()) {
      for (const [vm, freeze] of [...host.conditions.frozen]) {
        if (freeze.until <= now) events.push(...this.endFreeze(host, vm, true));
      }
      // A request held by the start gate may be free to start now (its slot came, a load figure went stale).
      if (host.queue.length > 0) touched.add(host);
    }
    events.push(...this.pumpAfterEnd(touched, ended));
    return events;
  }

  /** The earliest time at which tick() has something to do, or undefined. */
  nextDeadline(): number | undefined {
    let next = Infinity;
    for (const lease of this.leases.values()) {
      next = Math.min(next, lease.expiresAt);
      const host = this.hosts.get(lease.host)!;
      if (lease.slot.windowEnd > 0 && !host.policy.allowOverrun) next = Math.min(next, lease.slot.windowEnd);
    }
    for (const r of this.pending.values()) if (r.latestStart > 0) next = Math.min(next, r.latestStart);
    const now = this.clock.now();
    for (const host of this.hosts.values()) {
      for (const freeze of host.conditions.frozen.values()) next = Math.min(next, freeze.until);
      const decide = this.gate(host, now);
      if (!decide) continue;
      for (const r of host.queue) {
        const d = decide(r);
        if (!d.start) next = Math.min(next, d.until);
      }
    }
    return next === Infinity ? undefined : next;
  }

  // ---- queries ----

  hostNames(): string[] {
    return [...this.hosts.keys()].sort();
  }

  hasHost(name: string): boolean {
    return this.hosts.has(name);
  }

  /** @throws HostNotFoundError */
  host(name: string): HostView {
    const h = this.hostState(name);
    let activeGuest = 0;
    for (const l of h.active.values()) if (l.kind === 'GUEST') activeGuest++;
    return {
      name: h.name,
      fencing: h.fencing,
      paused: h.paused,
      pauseReason: h.pauseReason,
      policy: { ...h.policy },
      activeGuest,
      activeHypervisor: h.active.size - activeGuest,
      queued: h.queue.length,
      hostLoad: h.conditions.hostLoad && { ...h.conditions.hostLoad },
    };
  }

  activeLeases(hostName?: string): Lease[] {
    const all = hostName === undefined ? [...this.leases.values()] : [...this.hostState(hostName).active.values()];
    return all.map(copyLease);
  }

  /**
   * The active lease that `(tokenId, fencing)` holds, as Renew checks it, changing nothing.
   * @throws TokenNotFoundError, TokenEndedError, StaleFencingTokenError
   */
  holder(tokenId: string, fencing: number): Lease {
    return copyLease(this.holderLease(tokenId, fencing));
  }

  lease(tokenId: string): Lease | undefined {
    const l = this.leases.get(tokenId);
    return l && copyLease(l);
  }

  /** Waiting requests of a host in queue order, with position, estimated start and what holds each back. */
  waiting(hostName: string): WaitingInfo[] {
    const host = this.hosts.get(hostName);
    if (!host) return [];
    const active = [...host.active.values()].map((l) => ({ kind: l.kind, vm: l.vm, expectedEnd: l.slot.expectedEnd }));
    const now = this.clock.now();
    const starts = estimateStarts(now, active, host.queue, host.policy, host.paused);
    const decide = this.gate(host, now) ?? OPEN;
    const rule = this.targetRule(host);
    return host.queue.map((request, i) => {
      const d = decide(request);
      const estimate = starts.get(request) ?? 0;
      if (d.start && request.target && !targetAdmits(request, rule)) {
        // Its start hangs on other hosts' backups too: no estimate from this host's alone.
        const limits = this.targets.get(request.target)!;
        const waitingFor = describeTargetFull(limits, this.loadOf(limits.name), rule!.ioOf(request));
        return { request, position: i + 1, estimatedStart: 0, waitingFor, held: false, targetFull: limits.name };
      }
      return d.start
        ? {
            request,
            position: i + 1,
            estimatedStart: estimate,
            waitingFor: describeWait(request, active, host.queue, host.policy, host.paused),
            held: false,
          }
        : {
            request,
            position: i + 1,
            estimatedStart: estimate > 0 && Number.isFinite(d.until) ? Math.max(estimate, d.until) : 0,
            waitingFor: d.reason,
            held: true,
          };
    });
  }

  /** Every shared target's limits, its use across hosts and its waiters, by name. */
  targetViews(): TargetView[] {
    const queued = new Map<string, number>();
    for (const r of this.pending.values()) if (r.target) queued.set(r.target, (queued.get(r.target) ?? 0) + 1);
    return [...this.targets.values()]
      .map((t) => {
        const load = this.loadOf(t.name);
        return { ...t, active: load.active, ioInUse: load.ioBytesPerSec, queued: queued.get(t.name) ?? 0 };
      })
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Whether a request id is waiting. */
  isWaiting(requestId: string): boolean {
    return this.pending.has(requestId);
  }

  // ---- internals ----

  /** The start gate of a host now, or undefined when it knows nothing that could hold a request back. */
  private gate(host: HostState, now: number): ((request: PendingRequest) => StartDecision) | undefined {
    const c = host.conditions;
    if (c.plan.size === 0 && c.vmLoad.size === 0 && !c.hostLoad && c.frozen.size === 0 && c.migrating.size === 0)
      return undefined;
    const policy = completePolicy(host.policy);
    return (request) => startDecision(request, c, policy, now);
  }

  /** Ends a VM's freeze (thawed, or `lapsed` past its bound) and grants what it held. */
  private endFreeze(host: HostState, vm: string, lapsed: boolean): LessorEvent[] {
    const freeze = host.conditions.frozen.get(vm);
    if (!freeze) return [];
    host.conditions.frozen.delete(vm);
    const at = this.clock.now();
    const ended: LessorEvent = {
      type: 'vm-thawed',
      at,
      host: host.name,
      vm,
      source: freeze.source,
      since: freeze.since,
      lapsed,
      guests: this.runningGuests(host, vm),
    };
    return [ended, ...this.pump(host)];
  }

  private runningGuests(host: HostState, vm: string): Lease[] {
    return [...host.active.values()].filter((l) => l.kind === 'GUEST' && l.vm === vm).map(copyLease);
  }

  private pump(host: HostState): LessorEvent[] {
    if (host.queue.length === 0 || host.paused) return [];
    const now = this.clock.now();
    // Requests the start gate holds back are out of the rule's sight: they hold nothing back either.
    const forced = new Map<PendingRequest, string>();
    const decide = this.gate(host, now);
    const ready = !decide
      ? host.queue
      : host.queue.filter((r) => {
          const d = decide(r);
          if (d.start && d.forced) forced.set(r, d.reason!);
          return d.start;
        });
    const grants = selectGrants(
      [...host.active.values()],
      ready,
      host.policy,
      host.paused,
      this.targetRule(host, forced),
    );
    if (grants.length === 0) return [];
    const events: LessorEvent[] = [];
    for (const request of grants) {
      this.dequeue(host, request);
      const ttlMs = request.ttlMs || host.policy.leaseTtlMs;
      const lease: Lease = {
        tokenId: this.ids.newId(),
        requestId: request.requestId,
        fencing: ++host.fencing,
        kind: request.kind,
        host: host.name,
        vm: request.vm,
        job: request.job,
        priority: request.priority,
        ttlMs,
        grantedAt: now,
        expiresAt: now + ttlMs,
        slot: { start: now, expectedEnd: now + request.expectedDurationMs, windowEnd: request.windowEnd },
        budget: this.budgetAtGrant(host.policy, request, forced.has(request)),
        ...(request.target ? { target: request.target } : {}),
      };
      this.track(host, lease);
      const reason = forced.get(request);
      events.push(
        reason
          ? { type: 'granted', at: now, lease: copyLease(lease), queuedAt: request.queuedAt, forced: reason }
          : { type: 'granted', at: now, lease: copyLease(lease), queuedAt: request.queuedAt },
      );
    }
    return events;
  }

  /**
   * A backup starts on its kind's budget, so that it is held to it from its first second rather than from
   * its VM's first load report (the budget controller moves a guest backup from there). One forced to start
   * on a busy VM or host starts on the throttled budget instead.
   */
  private budgetAtGrant(
    policy: HostPolicy,
    { kind, target }: Pick<PendingRequest, 'kind' | 'target'>,
    forced: boolean,
  ): Lease['budget'] {
    const p = completePolicy(policy);
    const full =
      kind === 'GUEST'
        ? { cpuPercent: p.budgetCpuPercent, ioBytesPerSec: p.budgetIoBytesPerSec }
        : { cpuPercent: p.hypervisorBudgetCpuPercent, ioBytesPerSec: p.hypervisorBudgetIoBytesPerSec };
    const budget = forced ? reducedBudget(p, full) : full;
    const limits = target ? this.targets.get(target) : undefined;
    return limits ? { ...budget, ioBytesPerSec: targetIoBudget(budget.ioBytesPerSec, limits) } : budget;
  }

  /** The target rule of a host's grants now, or undefined when no target is configured. */
  private targetRule(host: HostState, forced?: ReadonlyMap<PendingRequest, string>): TargetRule | undefined {
    if (this.targets.size === 0) return undefined;
    return {
      limits: this.targets,
      load: this.targetLoad,
      ioOf: (w) => this.budgetAtGrant(host.policy, w, forced?.has(w as PendingRequest) ?? false).ioBytesPerSec,
    };
  }

  private loadOf(target: string): TargetLoad {
    return { ...(this.targetLoad.get(target) ?? { active: 0, ioBytesPerSec: 0 }) };
  }

  /**
   * Grants what the end of `ended` freed: on the hosts `touched`, and on every host with requests waiting
   * for a target one of them wrote to, the host of the oldest such waiter first, so that a target's room
   * goes to its waiters in arrival order across hosts.
   */
  private pumpAfterEnd(touched: Iterable<HostState>, ended: readonly Lease[]): LessorEvent[] {
    const oldest = new Map<HostState, number>();
    for (const h of touched) oldest.set(h, Infinity);
    const freed = new Set(ended.map((l) => l.target).filter((t) => t));
    if (freed.size > 0) {
      for (const h of this.hosts.values()) {
        for (const r of h.queue)
          if (r.target && freed.has(r.target)) oldest.set(h, Math.min(oldest.get(h) ?? Infinity, r.seq));
      }
    }
    const order = [...oldest].sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0));
    return order.flatMap(([h]) => this.pump(h));
  }

  private track(host: HostState, lease: Lease): void {
    if (lease.target) addLoad(this.targetLoad, lease.target, lease.budget.ioBytesPerSec);
    host.active.set(lease.tokenId, lease);
    this.leases.set(lease.tokenId, lease);
    this.activeByRequest.set(lease.requestId, lease);
  }

  private end(lease: Lease, state: EndState): HostState {
    const host = this.hosts.get(lease.host)!;
    if (lease.target) {
      const load = this.targetLoad.get(lease.target)!;
      if (load.active === 1) this.targetLoad.delete(lease.target);
      else
        this.targetLoad.set(lease.target, {
          active: load.active - 1,
          ioBytesPerSec: load.ioBytesPerSec - lease.budget.ioBytesPerSec,
        });
    }
    host.active.delete(lease.tokenId);
    this.leases.delete(lease.tokenId);
    this.activeByRequest.delete(lease.requestId);
    this.remember({ requestId: lease.requestId, tokenId: lease.tokenId, state, endedAt: this.clock.now() });
    return host;
  }

  private remember(e: EndedRequest): void {
    this.endedByRequest.set(e.requestId, e);
    this.endedByToken.set(e.tokenId, e);
    if (this.endedByRequest.size > this.maxEndedRequests) {
      const [oldestRequest, oldest] = this.endedByRequest.entries().next().value!;
      this.endedByRequest.delete(oldestRequest);
      this.endedByToken.delete(oldest.tokenId);
    }
  }

  private enqueue(host: HostState, request: PendingRequest): void {
    // Binary search keeps the queue in order without re-sorting it on every arrival.
    let lo = 0;
    let hi = host.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareWaiting(host.queue[mid], request) <= 0) lo = mid + 1;
      else hi = mid;
    }
    host.queue.splice(lo, 0, request);
    this.pending.set(request.requestId, request);
  }

  private dequeue(host: HostState, request: PendingRequest): void {
    const i = host.queue.indexOf(request);
    if (i >= 0) host.queue.splice(i, 1);
    this.pending.delete(request.requestId);
  }

  private pastWindow(lease: Lease, host: HostState, now: number): boolean {
    return lease.slot.windowEnd > 0 && now >= lease.slot.windowEnd && !host.policy.allowOverrun;
  }

  private activeLease(tokenId: string): Lease {
    const lease = this.leases.get(tokenId);
    if (lease) return lease;
    const ended = this.endedByToken.get(tokenId);
    if (ended) throw new TokenEndedError(tokenId, ended.state);
    throw new TokenNotFoundError(tokenId);
  }

  private holderLease(tokenId: string, fencing: number): Lease {
    const lease = this.activeLease(tokenId);
    if (lease.fencing !== fencing) throw new StaleFencingTokenError(tokenId, lease.fencing, fencing);
    return lease;
  }

  private hostState(name: string): HostState {
    const host = this.hosts.get(name);
    if (!host) throw new HostNotFoundError(name);
    return host;
  }

  private checkSameRequest(input: AcquireInput, existing: { kind: string; host: string; vm: string }): void {
    if (input.kind !== existing.kind || input.host !== existing.host || input.vm !== existing.vm) {
      throw new RequestConflictError(
        input.requestId,
        `a ${existing.kind} token for VM ${existing.vm} on host ${existing.host}`,
      );
    }
  }
}

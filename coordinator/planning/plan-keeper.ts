/**
 * Keeps each host's plan current and hands it to the lessor, whose grants follow it (domain/start-gate.ts):
 * replans every minute (time moves occurrences into the horizon), and soon after anything that changes the
 * plan's input: an agent's hello (its declared jobs), a backup's end (a duration learnt, a VM freed), a
 * policy change. Each replan starts from the last plan's slots, so a small change moves few of them.
 * `headroomctl plan` is answered from the same input, so what it shows is what is followed.
 *
 * The planning itself is done by `plan` (plan-worker.ts: on a worker thread), so this only gathers the
 * input and hands the result on; a host has one replan in flight at a time, and a change that comes while
 * it runs gets one more after it.
 *
 * Shared targets (coordinator.yaml's `targets`) are planned across hosts: a host's replan leaves room on
 * each target for the other hosts' last plans and running backups there (planner/plan-hosts.ts plans a
 * cluster's night the same way, in one go). With targets, replans of all hosts run one at a time, so that
 * two hosts never plan into the same room at once.
 */
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { AgentRegistry } from '../service/agent-registry';
import type { Coordinator } from '../service/coordinator';
import type { PlannedRun } from '../domain/start-gate';
import type { TargetLimits } from '../domain/targets';
import { targetUses } from '../planner';
import type { PlanTarget } from '../planner/types';
import { DEFAULT_HORIZON_MS, type DeclaredJob, type PlanView, type PlanViewInput, type ViewSlot } from './plan-view';

export interface PlanKeeperDeps {
  coordinator: Pick<Coordinator, 'state' | 'endedRuns' | 'setPlan' | 'onCommitted'>;
  registry: Pick<AgentRegistry, 'list'>;
  /**
   * A host's schedule: its hypervisor jobs (hypervisor-jobs/), as far as planning reads them — the
   * coordinator's own host's, or in a cluster each member's as published (cluster/host-jobs.ts).
   */
  hypervisorJobs: (host: string) => readonly (DeclaredJob & { vms: readonly string[] })[];
  /** A VM's identity (placement-monitor.ts), so that a job listing `web1` plans the VM its tokens name. Default: itself. */
  resolveVm?: (vm: string) => string;
  clock: Clock;
  log: Logger;
  /** Builds a plan view from its input (plan-view.ts buildPlanView, on a worker thread: plan-worker.ts). */
  plan: (input: PlanViewInput) => Promise<PlanView>;
  /**
   * The same for `view()` (GetPlan), on a thread of its own, so that an admin's read does not wait behind a
   * replan of a large host in flight. Default: `plan`.
   */
  planView?: (input: PlanViewInput) => Promise<PlanView>;
  /** The shared targets whose limits every host's plan holds across hosts. Default none. */
  targets?: readonly TargetLimits[];
  /** Default 60 s. */
  replanIntervalMs?: number;
  /** How long after a change the host is replanned, so that a burst of changes costs one plan. Default 1 s. */
  settleMs?: number;
}

export interface TargetTimelineView {
  now: number;
  horizonEnd: number;
  slots: (ViewSlot & { host: string })[];
}

/** The host's ended runs that durations and last starts are learnt from, the newest. */
const RUNS_TO_LEARN_FROM = 10_000;

/**
 * A replan keeps the last plan's slots while they leave out only the runs it left out (planner.ts), so a
 * night too full to place every run is not planned from scratch every minute (up to a few seconds each).
 * This often it is anyway, as a plan from scratch of a day that has moved on may place them.
 */
const FRESH_LOOK_MS = 10 * 60_000;

export class PlanKeeper {
  private readonly last = new Map<string, PlanView>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** When each host whose plan leaves runs out was last planned without that allowance. */
  private readonly lastFreshLook = new Map<string, number>();
  /**
   * The VMs of each host whose backup ended since its last replan. The plan held their next runs back
   * until the running token's expected end or expiry; the next replan places those runs anew, at the
   * earliest start the rules allow, instead of keeping the late slots (a run due at :00 started at :09
   * because a hand-run backup at :39 had held its VM until its token's expiry).
   */
  private readonly freed = new Map<string, Set<string>>();
  /** Hosts with a replan in flight, and whether another was asked for meanwhile. */
  private readonly inFlight = new Map<string, { again: boolean }>();
  /** With shared targets: the replan in flight of any host, which the next waits for. */
  private targetChain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private interval: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly deps: PlanKeeperDeps) {}

  start(): void {
    this.unsubscribe = this.deps.coordinator.onCommitted((events) => {
      for (const e of events) {
        if (e.type === 'released' || e.type === 'expired' || e.type === 'revoked') {
          const vms = this.freed.get(e.lease.host) ?? new Set<string>();
          this.freed.set(e.lease.host, vms.add(e.lease.vm));
          this.soon(e.lease.host);
        } else if (e.type === 'policy-changed' || e.type === 'host-added') this.soon(e.host);
      }
    });
    this.interval = setInterval(() => this.replanAll(), this.deps.replanIntervalMs ?? 60_000);
    this.interval.unref();
    this.replanAll();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.interval);
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  /** What a host's agents declare changed (a hello): replan it soon. */
  declaredChanged(host: string): void {
    this.soon(host);
  }

  /** The plan the host's grants follow now (the last one made), if any. */
  current(host: string): PlanView | undefined {
    return this.last.get(host);
  }

  /** The plans every host follows now, on one shared target over `horizonMs`: their slots by start, each with its host. */
  targetTimeline(target: string, horizonMs = DEFAULT_HORIZON_MS): TargetTimelineView {
    const now = this.deps.clock.now();
    const horizonEnd = now + horizonMs;
    const slots = [...this.last].flatMap(([host, view]) =>
      view.slots.filter((s) => s.target === target && s.start < horizonEnd).map((s) => ({ ...s, host })),
    );
    slots.sort((a, b) => a.start - b.start || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
    return { now, horizonEnd, slots };
  }

  /** The host's plan over `horizonMs` from now, from the same input and last slots as the followed plan. */
  view(host: string, horizonMs = DEFAULT_HORIZON_MS): Promise<PlanView> {
    return (this.deps.planView ?? this.deps.plan)(this.input(host, horizonMs, this.declared(host)));
  }

  /**
   * `freshLook`: the last plan's slots without the runs it left out, so that leaving them out again costs a
   * plan from scratch. `freed`: VMs whose slots are not kept (see `freed` above).
   */
  private input(
    host: string,
    horizonMs: number,
    declared: PlanViewInput['declared'],
    freshLook = false,
    freed?: ReadonlySet<string>,
  ): PlanViewInput {
    const { coordinator, clock } = this.deps;
    let last = this.last.get(host);
    if (last && freed) last = { ...last, slots: last.slots.filter((s) => !freed.has(s.vm)) };
    return {
      now: clock.now(),
      horizonMs,
      policy: coordinator.state.host(host).policy,
      declared,
      previous: freshLook && last ? { slots: last.slots } : last,
      running: coordinator.state.activeLeases(host),
      ended: coordinator.endedRuns(host, RUNS_TO_LEARN_FROM),
      ...(this.deps.targets?.length ? { targets: this.targetsBeside(host) } : {}),
    };
  }

  /** Each shared target with what the other hosts' last plans and running backups hold of it. */
  private targetsBeside(host: string): PlanTarget[] {
    const now = this.deps.clock.now();
    const running = this.deps.coordinator.state
      .activeLeases()
      .filter((l) => l.host !== host && l.target)
      .map((l) => ({
        kind: l.kind,
        vm: l.vm,
        expectedEnd: Math.max(l.slot.expectedEnd, l.expiresAt),
        cost: l.budget,
        target: l.target,
      }));
    const slots = [...this.last].filter(([h]) => h !== host).flatMap(([, view]) => view.slots);
    return this.deps.targets!.map((t) => ({ ...t, others: targetUses(t, slots, running, now) }));
  }

  private declared(host: string): PlanViewInput['declared'] {
    // Stored as the hello carried them: JobDeclaration__Output.
    const guests = this.deps.registry.list(host).map((a) => ({
      vm: a.record.vm,
      kind: 'GUEST' as const,
      jobs: a.record.jobs as DeclaredJob[],
      declaredAt: a.record.lastHelloAt,
    }));
    const byVm = new Map<string, DeclaredJob[]>();
    const resolve = this.deps.resolveVm ?? ((vm: string) => vm);
    for (const job of this.deps.hypervisorJobs(host)) {
      for (const vm of job.vms.map(resolve)) byVm.set(vm, [...(byVm.get(vm) ?? []), job]);
    }
    return [...guests, ...[...byVm].map(([vm, jobs]) => ({ vm, kind: 'HYPERVISOR' as const, jobs }))];
  }

  private soon(host: string): void {
    if (this.pending.has(host)) return;
    const timer = setTimeout(() => {
      this.pending.delete(host);
      this.replan(host);
    }, this.deps.settleMs ?? 1_000);
    timer.unref();
    this.pending.set(host, timer);
  }

  private replanAll(): void {
    for (const host of this.deps.coordinator.state.hostNames()) this.replan(host);
  }

  private replan(host: string): void {
    const flight = this.inFlight.get(host);
    if (flight) {
      flight.again = true;
      return;
    }
    // A host with nothing declared has nothing to follow: skip the history read.
    const declared = this.declared(host);
    if (!this.last.has(host) && declared.every((d) => d.jobs.length === 0)) return;
    const current = { again: false };
    this.inFlight.set(host, current);
    const now = this.deps.clock.now();
    const freshLook =
      (this.last.get(host)?.noRoom.length ?? 0) > 0 &&
      now - (this.lastFreshLook.get(host) ?? -Infinity) >= FRESH_LOOK_MS;
    if (freshLook) this.lastFreshLook.set(host, now);
    const freed = this.freed.get(host);
    this.freed.delete(host);
    const before = this.deps.targets?.length ? this.targetChain : Promise.resolve();
    const done = before
      .then(() => this.deps.plan(this.input(host, DEFAULT_HORIZON_MS, declared, freshLook, freed)))
      .then(
        (view) => this.follow(host, view),
        (e) =>
          this.deps.log.error('could not plan a host; its grants go on without a plan', { host, error: e as Error }),
      )
      .finally(() => {
        this.inFlight.delete(host);
        if (current.again && !this.stopped) this.replan(host);
      });
    if (this.deps.targets?.length) this.targetChain = done;
  }

  private follow(host: string, view: PlanView): void {
    if (this.stopped) return;
    this.last.set(host, view);
    const runs: PlannedRun[] = view.slots.map((s) => ({
      kind: s.kind,
      vm: s.vm,
      job: s.job,
      start: s.start,
      earliestStart: s.earliestStart,
      windowEnd: s.windowEnd,
    }));
    this.deps.coordinator
      .setPlan(host, runs)
      .catch((e) => this.deps.log.warn('could not hand a plan to the lessor', { host, error: e as Error }));
  }
}

/**
 * The start gate: whether a waiting request may start now, besides the admission rule (admission.ts).
 * Two things hold a request back:
 *  - the host's plan (planner.ts): a request for a planned run waits for its slot, so that the starts of
 *    a busy night are spread as planned instead of all firing at the cron minute;
 *  - the load: no backup starts on a VM whose foreground load (its agent's report, minus Headroom's own
 *    backups), nor on a host whose own load, is at or above the policy's start thresholds; where a wait
 *    signal is in force (PSI, or the disk await: load-signals.ts), none starts while one is at or above
 *    its throttle threshold (it would be throttled at once: the VM's own thresholds where the policy gives
 *    it some, vmPressurePolicy), and under PSI the CPU and I/O start thresholds are not in force.
 *  - a freeze of the VM by the hypervisor's own tools (qemu-guest-agent's fsfreeze hook, FreezeNotice):
 *    no GUEST backup of it starts until the thaw, or until the freeze's bound passes without one.
 *  - a migration of the VM (placement): no HYPERVISOR backup of it starts until the migration ends, since
 *    the disks it would copy are being handed to another host.
 * Load never holds a request past the point where waiting longer would miss its window: from then on it
 * starts anyway, on the throttled budget (it is "forced"). A freeze is bounded by its own hold instead.
 * Pure: takes plain data and `now`.
 */
import type { PendingRequest, TokenKind } from './lease';
import { type HostPolicy, type PressurePolicy, type StartPolicy, vmPressurePolicy } from './policy';
import { type WaitFigures, waitSignals } from './load-signals';

/** A load figure as last reported, with when. Rates are per second; CPU is percent of the machine. */
export interface LoadView {
  cpuPercent: number;
  ioBytesPerSec: number;
  /** What the machine's work waits for (PSI, disk await), where reported: load-signals.ts. */
  waits?: WaitFigures;
  /** Clock ms of the sample. */
  at: number;
}

/** One run of the host's plan, as the lessor follows it. */
export interface PlannedRun {
  kind: TokenKind;
  vm: string;
  job: string;
  /** Planned start. */
  start: number;
  /** When the occurrence was due (its cron time) and when its window ends. */
  earliestStart: number;
  windowEnd: number;
}

/** A VM frozen by the hypervisor's own tools, as its agent reported. */
export interface VmFreeze {
  /** Who froze it, e.g. "qemu-guest-agent". */
  source: string;
  /** Clock ms of the first notice of this freeze. */
  since: number;
  /** When the hold lapses if no thaw comes first. */
  until: number;
}

/** A migration of a VM under way, as placement reported it. */
export interface VmMigration {
  /** The VM's friendly name, for the waiters. */
  name: string;
  direction: 'in' | 'out';
  since: number;
}

/** What the gate knows of one host: soft state, rebuilt from plans, load reports and freeze notices after a restart. */
export interface HostConditions {
  /** Planned runs by planKey(), each list by start. */
  plan: ReadonlyMap<string, readonly PlannedRun[]>;
  /** Each VM's foreground load. */
  vmLoad: ReadonlyMap<string, LoadView>;
  /** The host's own load. */
  hostLoad?: LoadView;
  /** VMs frozen by the hypervisor's own tools. */
  frozen?: ReadonlyMap<string, VmFreeze>;
  /** VMs migrating to or from this host. */
  migrating?: ReadonlyMap<string, VmMigration>;
}

export type StartDecision =
  | {
      start: true;
      /** It starts despite the load, because waiting longer would miss its window: on the throttled budget. */
      forced: boolean;
      /** Why it was forced (for the history); set when `forced`. */
      reason?: string;
    }
  | {
      start: false;
      /** When the decision may change by time alone (a slot starts, a load figure goes stale, it is forced); Infinity if only new data can change it. */
      until: number;
      /** For people: "its planned slot starts at …", "VM cpu 72% ≥ 60%". */
      reason: string;
    };

/** What the gate needs of a host's policy. */
export type StartGatePolicy = Pick<
  StartPolicy,
  | 'followPlan'
  | 'startBelowCpuPercent'
  | 'startBelowIoBytesPerSec'
  | 'hostStartBelowCpuPercent'
  | 'hostStartBelowIoBytesPerSec'
  | 'vmStartBelow'
> &
  PressurePolicy &
  Pick<HostPolicy, 'vmPressure'> & { reportIntervalMs: number };

/** A load figure older than this many report intervals is ignored: an agent that went quiet holds nothing back. */
export const STALE_REPORTS = 3;

/** How far a request's window may be from a planned run's for the two to be one occurrence. */
export const PLAN_MATCH_TOLERANCE_MS = 5 * 60_000;

export function planKey(kind: TokenKind, vm: string, job: string): string {
  return `${kind}\u0000${vm}\u0000${job}`;
}

/** Groups planned runs by planKey, each group by start. */
export function indexPlan(runs: readonly PlannedRun[]): Map<string, PlannedRun[]> {
  const out = new Map<string, PlannedRun[]>();
  for (const r of runs) {
    const key = planKey(r.kind, r.vm, r.job);
    const list = out.get(key) ?? [];
    list.push(r);
    out.set(key, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.start - b.start);
  return out;
}

/**
 * How far ahead of a planned occurrence's cron time a request for it may come: the guest's clock, which
 * times the agent's scheduled requests, may run a little ahead of the host's.
 */
export const PLAN_CLOCK_SKEW_MS = 5_000;

/**
 * The planned run a request is for: same kind, VM and job, and the window nearest to the request's (within
 * PLAN_MATCH_TOLERANCE_MS); for a request without a window, the run whose window holds `now`. Never a run
 * whose slot lies past the request's own latest start or window (waiting for it could only end in
 * WINDOW_CLOSED), nor one whose occurrence was not yet due when the request came: a hand-run of a declared
 * job just before its next cron time is not that occurrence, and starts as any unplanned request does.
 */
export function matchPlannedRun(
  request: Pick<PendingRequest, 'kind' | 'vm' | 'job' | 'windowEnd' | 'latestStart' | 'queuedAt'>,
  plan: HostConditions['plan'],
  now: number,
): PlannedRun | undefined {
  const runs = plan.get(planKey(request.kind, request.vm, request.job));
  if (!runs) return undefined;
  const deadline = Math.min(
    request.latestStart > 0 ? request.latestStart : Infinity,
    request.windowEnd > 0 ? request.windowEnd : Infinity,
  );
  let best: PlannedRun | undefined;
  let bestDistance = Infinity;
  for (const r of runs) {
    if (r.start >= deadline || r.earliestStart > request.queuedAt + PLAN_CLOCK_SKEW_MS) continue;
    const matches =
      request.windowEnd > 0
        ? Math.abs(r.windowEnd - request.windowEnd) <= PLAN_MATCH_TOLERANCE_MS
        : r.earliestStart <= now + PLAN_MATCH_TOLERANCE_MS && now < r.windowEnd;
    const distance =
      request.windowEnd > 0 ? Math.abs(r.windowEnd - request.windowEnd) : Math.abs(r.earliestStart - now);
    if (matches && distance < bestDistance) {
      best = r;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * From when load no longer holds a request back: waiting any longer would leave it less than twice its
 * expected duration before its window ends (half of what is left of its window when it declares no
 * duration), or would pass its latest start. Infinity for a request with neither a window nor a latest start.
 */
export function forcedFrom(
  request: Pick<PendingRequest, 'latestStart' | 'windowEnd' | 'expectedDurationMs' | 'queuedAt'>,
): number {
  let at = request.latestStart > 0 ? request.latestStart : Infinity;
  if (request.windowEnd > 0) {
    const slack =
      request.expectedDurationMs > 0 ? 2 * request.expectedDurationMs : (request.windowEnd - request.queuedAt) / 2;
    at = Math.min(at, request.windowEnd - slack);
  }
  return at;
}

/** Why a load is too high to start on, or undefined. Thresholds of 0 are off; a stale figure counts as none. */
function busy(
  who: string,
  load: LoadView | undefined,
  policy: PressurePolicy,
  cpuThreshold: number,
  ioThreshold: number,
  staleAt: number,
): string | undefined {
  if (!load || load.at < staleAt) return undefined;
  const waits = waitSignals(policy, load.waits ?? {});
  const waiting = waits.signals.find((s) => s.throttleAbove > 0 && s.value >= s.throttleAbove);
  if (waiting)
    return `${who} ${waiting.name} ${waiting.format(waiting.value)} ≥ ${waiting.format(waiting.throttleAbove)}`;
  if (waits.source === 'pressure') return undefined;
  const what = who === 'host' ? who : `${who} foreground`;
  if (cpuThreshold > 0 && load.cpuPercent >= cpuThreshold) {
    return `${what} cpu ${Math.round(load.cpuPercent)}% ≥ ${cpuThreshold}%`;
  }
  if (ioThreshold > 0 && load.ioBytesPerSec >= ioThreshold) {
    return `${what} disk I/O ${Math.round(load.ioBytesPerSec)} B/s ≥ ${ioThreshold} B/s`;
  }
  return undefined;
}

/** "VM web-1 frozen by qemu-guest-agent since …": why its guest backups wait. */
export function describeFreeze(vm: string, freeze: VmFreeze): string {
  return `VM ${vm} frozen by ${freeze.source} since ${new Date(freeze.since).toISOString()} (held until the thaw, at most until ${new Date(freeze.until).toISOString()})`;
}

/** "web1 is migrating away from this host": why its hypervisor backups wait. */
export function describeMigration(m: VmMigration): string {
  return `${m.name} is migrating ${m.direction === 'out' ? 'away from' : 'to'} this host (since ${new Date(m.since).toISOString()})`;
}

export function startDecision(
  request: PendingRequest,
  conditions: HostConditions,
  policy: StartGatePolicy,
  now: number,
): StartDecision {
  const migration = request.kind === 'HYPERVISOR' ? conditions.migrating?.get(request.vm) : undefined;
  // Only the end of the migration (new data) lets it start: no time bound.
  if (migration) return { start: false, until: Infinity, reason: describeMigration(migration) };
  // Only GUEST work: a HYPERVISOR backup of the VM is what such a freeze is usually for.
  const freeze = request.kind === 'GUEST' ? conditions.frozen?.get(request.vm) : undefined;
  if (freeze && now < freeze.until) {
    return { start: false, until: freeze.until, reason: describeFreeze(request.vm, freeze) };
  }
  if (policy.followPlan) {
    const run = matchPlannedRun(request, conditions.plan, now);
    if (run && run.start > now) {
      return {
        start: false,
        until: run.start,
        reason: `its planned slot starts at ${new Date(run.start).toISOString()}`,
      };
    }
  }
  const staleMs = STALE_REPORTS * policy.reportIntervalMs;
  const staleAt = now - staleMs;
  const vmLoad = conditions.vmLoad.get(request.vm);
  const own = policy.vmStartBelow[request.vm] ?? {
    cpuPercent: policy.startBelowCpuPercent,
    ioBytesPerSec: policy.startBelowIoBytesPerSec,
  };
  const vmPolicy = vmPressurePolicy(policy, request.vm);
  const vmBusy = busy(`VM ${request.vm}`, vmLoad, vmPolicy, own.cpuPercent, own.ioBytesPerSec, staleAt);
  const hostBusy = vmBusy
    ? undefined
    : busy(
        'host',
        conditions.hostLoad,
        policy,
        policy.hostStartBelowCpuPercent,
        policy.hostStartBelowIoBytesPerSec,
        staleAt,
      );
  const reason = vmBusy ?? hostBusy;
  if (!reason) return { start: true, forced: false };
  const forced = forcedFrom(request);
  if (now >= forced)
    return { start: true, forced: true, reason: `${reason}, but waiting longer would miss its window` };
  // The figure that holds it goes stale, and stops holding it, unless a newer report comes first.
  const holder = (vmBusy ? vmLoad : conditions.hostLoad)!;
  return { start: false, until: Math.min(forced, holder.at + staleMs), reason };
}

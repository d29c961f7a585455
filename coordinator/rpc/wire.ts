/**
 * Domain values as wire messages. The only place that knows both shapes.
 */
import type { DenyReason } from '../domain/events';
import type { Lease } from '../domain/lease';
import type { HostView, WaitingInfo } from '../domain/lessor';
import { type HostPolicy, completePolicy } from '../domain/policy';
import type { PlanView, ViewSlot } from '../planning/plan-view';
import type { TargetTimelineView } from '../planning/plan-keeper';
import type { TargetView } from '../domain/targets';
import type { PlacedVm } from '../domain/placement/types';
import type { QuiesceAnswer, ThawAnswer } from '../service/quiesce-broker';
import type { HistoryRecord } from '../store/store';
import { denyReason, historyEventType, quiesceState, tokenKind } from '../../proto/enums';
import type * as v1 from '../../proto/generated/headroom/v1';

export function token(l: Lease): v1.Token {
  return {
    tokenId: l.tokenId,
    fencing: l.fencing,
    kind: tokenKind.toWire(l.kind),
    host: l.host,
    vm: l.vm,
    job: l.job,
    requestId: l.requestId,
    slot: { startUnixMs: l.slot.start, expectedEndUnixMs: l.slot.expectedEnd, windowEndUnixMs: l.slot.windowEnd },
    grantedUnixMs: l.grantedAt,
    expiresUnixMs: l.expiresAt,
    ttlMs: l.ttlMs,
    priority: l.priority,
    budget: { ioBytesPerSec: l.budget.ioBytesPerSec, cpuPercent: l.budget.cpuPercent },
    target: l.target ?? '',
  };
}

export function denied(reason: DenyReason, message: string): v1.Denied {
  return { reason: denyReason.toWire(reason), message };
}

export function quiesceAnswer(a: QuiesceAnswer): v1.QuiesceResponse {
  return { ...a, state: quiesceState.toWire(a.state) };
}

export function thawAnswer(a: ThawAnswer): v1.ThawResponse {
  return { ...a, state: quiesceState.toWire(a.state) };
}

export function queuedRequest(w: WaitingInfo): v1.QueuedRequest {
  return {
    request: {
      ...w.request,
      kind: tokenKind.toWire(w.request.kind),
      latestStartUnixMs: w.request.latestStart,
      windowEndUnixMs: w.request.windowEnd,
      target: w.request.target ?? '',
    },
    position: w.position,
    queuedUnixMs: w.request.queuedAt,
    estimatedStartUnixMs: w.estimatedStart,
    waitingFor: w.waitingFor,
  };
}

/** Every field is set: a policy stored before the budget fields existed answers with their defaults. */
export function policy(p: HostPolicy): v1.Policy {
  return completePolicy(p);
}

export function hostInfo(h: HostView, agentsConnected: number): v1.HostInfo {
  return {
    host: h.name,
    paused: h.paused,
    pauseReason: h.pauseReason,
    fencing: h.fencing,
    policy: policy(h.policy),
    activeGuest: h.activeGuest,
    activeHypervisor: h.activeHypervisor,
    queued: h.queued,
    agentsConnected,
    hostLoad: h.hostLoad
      ? {
          cpuPercent: h.hostLoad.cpuPercent,
          ioBytesPerSec: h.hostLoad.ioBytesPerSec,
          cpuPressure: h.hostLoad.waits?.cpuPressure ?? null,
          ioPressure: h.hostLoad.waits?.ioPressure ?? null,
          memoryPressure: h.hostLoad.waits?.memoryPressure ?? null,
          diskAwaitMs: h.hostLoad.waits?.diskAwaitMs ?? undefined,
        }
      : null,
  };
}

/** `vmName`: the friendly name of `r.vm`, when placement knows one. */
/** The placement fields of a host's HostInfo; `connected`: VMs with an agent connected. */
export function placement(
  source: string,
  vms: readonly PlacedVm[],
  connected: ReadonlySet<string>,
): Pick<v1.HostInfo, 'placementSource' | 'placement'> {
  return {
    placementSource: source,
    placement: vms.map((v) => ({
      uuid: v.uuid,
      name: v.name,
      vmid: v.vmid ?? '',
      state: v.state,
      migrating: v.migrating ?? '',
      agentConnected: connected.has(v.uuid),
    })),
  };
}

export function historyEvent(r: HistoryRecord, vmName = ''): v1.HistoryEvent {
  return {
    vmName,
    seq: r.seq,
    atUnixMs: r.at,
    type: historyEventType.toWire(r.type),
    host: r.host,
    vm: r.vm,
    job: r.job,
    kind: r.kind ? tokenKind.toWire(r.kind) : 'TOKEN_KIND_UNSPECIFIED',
    tokenId: r.tokenId,
    fencing: r.fencing,
    requestId: r.requestId,
    detail: r.detail,
  };
}

/** What Queued says of a waiting request. */
export function queued(w: WaitingInfo): v1.Queued {
  return {
    position: w.position,
    estimatedStartUnixMs: w.estimatedStart,
    waitingFor: w.waitingFor,
    targetFull: w.targetFull ?? '',
  };
}

export function targetInfo(t: TargetView): v1.TargetInfo {
  return {
    name: t.name,
    maxConcurrent: t.maxConcurrent,
    ioBudgetBytesPerSec: t.ioBytesPerSec,
    active: t.active,
    ioBytesPerSec: t.ioInUse,
    queued: t.queued,
  };
}

export function plannedSlot(s: ViewSlot, host: string): v1.PlannedSlot {
  return {
    vm: s.vm,
    job: s.job,
    kind: tokenKind.toWire(s.kind),
    startUnixMs: s.start,
    endUnixMs: s.end,
    earliestStartUnixMs: s.earliestStart,
    windowEndUnixMs: s.windowEnd,
    host,
    target: s.target ?? '',
    targetIoBytesPerSec: s.targetIo ?? 0,
  };
}

/** A shared target's timeline: every host's planned slots on it, and the target with its use now. */
export function targetPlan(target: TargetView, { now, horizonEnd, slots }: TargetTimelineView): v1.Plan {
  return {
    host: '',
    generatedUnixMs: now,
    horizonEndUnixMs: horizonEnd,
    slots: slots.map((s) => plannedSlot(s, s.host)),
    unplaced: [],
    phases: [],
    budget: { ioBytesPerSec: target.ioBytesPerSec, cpuPercent: 0 },
    target: targetInfo(target),
  };
}

export function plan(host: string, p: PlanView): v1.Plan {
  return {
    host,
    generatedUnixMs: p.now,
    horizonEndUnixMs: p.horizonEnd,
    slots: p.slots.map((s) => plannedSlot(s, host)),
    unplaced: p.unplaced.map((u) => ({
      vm: u.vm,
      job: u.job,
      kind: tokenKind.toWire(u.kind),
      reason: u.reason,
      earliestStartUnixMs: u.earliestStart,
      windowEndUnixMs: u.windowEnd,
      host,
    })),
    phases: p.phases.map((ph) => ({ kind: tokenKind.toWire(ph.kind), startUnixMs: ph.start, endUnixMs: ph.end })),
    budget: { ioBytesPerSec: p.budget.ioBytesPerSec, cpuPercent: p.budget.cpuPercent },
    target: null,
  };
}

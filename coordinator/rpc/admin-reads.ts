/**
 * What AdminService's read calls answer, as plain functions of their (validated) requests: the gRPC handlers
 * and the dashboard's JSON endpoints (coordinator/dashboard) both answer from here, so they cannot disagree.
 */
import type { AgentRegistry, AgentState } from '../service/agent-registry';
import { SIGNAL_SOURCE_LABEL, signalSource } from '../domain/load-signals';
import { waitFigures } from '../../common/backup-run/load-collector';
import { completePolicy, DEFAULT_POLICY, vmPressurePolicy } from '../domain/policy';
import type { Coordinator } from '../service/coordinator';
import type { PlacementMonitor } from '../service/placement-monitor';
import type { PlanKeeper } from '../planning/plan-keeper';
import { DEFAULT_HORIZON_MS } from '../planning/plan-view';
import type { HistoryRecord } from '../store/store';
import { HostNotFoundError } from '../domain/errors';
import { targetOf } from '../domain/targets';
import * as validate from './validate';
import * as wire from './wire';
import type * as v1 from '../../proto/generated/headroom/v1';

export const DEFAULT_HISTORY = 100;
export const MAX_HISTORY = 10_000;
/** A plan further ahead than a week says little: agents say hello again, and history moves on, before then. */
const MAX_HORIZON_MS = 7 * 24 * 3_600_000;

export type AdminReads = ReturnType<typeof adminReads>;

/** Each function throws InvalidArgumentError naming the field, or HostNotFoundError. */
export function adminReads(
  coordinator: Coordinator,
  registry: AgentRegistry,
  plans: Pick<PlanKeeper, 'view' | 'targetTimeline'>,
  placement: Pick<PlacementMonitor, 'resolve' | 'nameOf' | 'placementOf'>,
) {
  const knownHost = (value: string): string => {
    const host = validate.host(value, coordinator.defaultHost);
    if (!coordinator.state.hasHost(host)) throw new HostNotFoundError(host);
    return host;
  };
  const optionalHost = (value: string): string | undefined => (value === '' ? undefined : knownHost(value));
  /** The signal an agent's VM is judged by now, for people: its last report under its host's policy, as for that VM. */
  const loadSignal = (a: AgentState) => {
    const host = a.record.host;
    if (!a.lastLoad) return '';
    const policy = coordinator.state.hasHost(host) ? coordinator.state.host(host).policy : DEFAULT_POLICY;
    return SIGNAL_SOURCE_LABEL[
      signalSource(vmPressurePolicy(completePolicy(policy), a.record.vm), waitFigures(a.lastLoad))
    ];
  };
  const hostInfo = (name: string) => {
    const view = coordinator.state.host(name);
    const hostLoadSignal = view.hostLoad
      ? SIGNAL_SOURCE_LABEL[signalSource(completePolicy(view.policy), view.hostLoad.waits ?? {})]
      : '';
    const info = { ...wire.hostInfo(view, registry.connectedCount(name)), hostLoadSignal };
    // The coordinator's own host's, or in a cluster each member's (cluster/host-placements.ts).
    const known = placement.placementOf(name);
    if (!known) return info;
    const connected = new Set(registry.list(name).flatMap((a) => (a.connected ? [a.record.vm] : [])));
    return { ...info, ...wire.placement(known.kind, known.vms, connected) };
  };
  return {
    knownHost,
    optionalHost,
    hostInfo,
    historyEvent: (r: HistoryRecord) => wire.historyEvent(r, placement.nameOf(r.vm)),

    hosts: () => coordinator.state.hostNames().map(hostInfo),

    agents: (hostValue: string) =>
      registry.list(optionalHost(hostValue)).map((a): v1.AgentInfo => ({
        vm: a.record.vm,
        vmName: placement.nameOf(a.record.vm) ?? '',
        host: a.record.host,
        agentVersion: a.record.agentVersion,
        hostname: a.record.hostname,
        connected: a.connected,
        lastHelloUnixMs: a.record.lastHelloAt,
        lastLoad: a.lastLoad ?? null,
        jobs: a.record.jobs as v1.JobDeclaration[],
        budgets: [...a.budgets.values()],
        loadSignal: loadSignal(a),
      })),

    tokens: (hostValue: string) => {
      const host = optionalHost(hostValue);
      const hosts = host ? [host] : coordinator.state.hostNames();
      return {
        active: coordinator.state.activeLeases(host).map(wire.token),
        queued: hosts.flatMap((h) => coordinator.state.waiting(h).map(wire.queuedRequest)),
      };
    },

    history: async (req: v1.ListHistoryRequest__Output) =>
      (
        await coordinator.history({
          host: optionalHost(req.host),
          vm: req.vm === '' ? undefined : placement.resolve('vm', validate.name('vm', req.vm)),
          limit: validate.limit('limit', req.limit, DEFAULT_HISTORY, MAX_HISTORY),
          afterSeq: req.afterSeq,
          ...validate.historyFilter(req),
        })
      ).map((r) => wire.historyEvent(r, placement.nameOf(r.vm))),

    targets: () => coordinator.state.targetViews().map(wire.targetInfo),

    plan: async (req: Pick<v1.GetPlanRequest__Output, 'host' | 'horizonMs' | 'target'>) => {
      const horizonMs = validate.limit('horizon_ms', req.horizonMs, DEFAULT_HORIZON_MS, MAX_HORIZON_MS);
      if (req.target !== '') {
        // The plans every host follows now: a target's timeline is theirs put together, not a plan made for it.
        const views = coordinator.state.targetViews();
        const target = targetOf(req.target, new Map(views.map((t) => [t.name, t])))!;
        return wire.targetPlan(target, plans.targetTimeline(target.name, horizonMs));
      }
      const host = knownHost(req.host);
      return wire.plan(host, await plans.view(host, horizonMs));
    },
  };
}

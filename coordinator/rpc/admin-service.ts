/**
 * AdminService: what headroomctl calls. Reads come from the lessor's in-memory state and the store's
 * history; changes go through the coordinator like every other operation. The snapshot calls are
 * snapshot-service.ts's.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import type { AgentRegistry, AgentState } from '../service/agent-registry';
import type { Coordinator } from '../service/coordinator';
import type { PlacementMonitor } from '../service/placement-monitor';
import type { PlanKeeper } from '../planning/plan-keeper';
import { DEFAULT_HORIZON_MS } from '../planning/plan-view';
import type { HistoryRecord } from '../store/store';
import { HostNotFoundError } from '../domain/errors';
import { SIGNAL_SOURCE_LABEL, signalSource } from '../domain/load-signals';
import { waitFigures } from '../../common/backup-run/load-collector';
import { completePolicy, DEFAULT_POLICY } from '../domain/policy';
import { resourceExhausted } from './call-guard';
import { type SnapshotServiceOptions, snapshotService } from './snapshot-service';
import { MAX_WATCH_BACKLOG } from './limits';
import { stream, unary } from './handler';
import * as validate from './validate';
import * as wire from './wire';
import type * as v1 from '../../proto/generated/headroom/v1';

const DEFAULT_HISTORY = 100;
const MAX_HISTORY = 10_000;
/** A plan further ahead than a week says little: agents say hello again, and history moves on, before then. */
const MAX_HORIZON_MS = 7 * 24 * 3_600_000;

/** `plans` answers GetPlan from the same input as the plan the grants follow; `snapshots` serves the snapshot calls. */
export function adminService(
  coordinator: Coordinator,
  registry: AgentRegistry,
  plans: Pick<PlanKeeper, 'view'>,
  log: Logger,
  snapshots: Omit<SnapshotServiceOptions, 'log' | 'vms'>,
  placement: Pick<PlacementMonitor, 'resolve' | 'nameOf' | 'vms' | 'sourceKind'>,
): v1.AdminServiceHandlers {
  const knownHost = (value: string): string => {
    const host = validate.host(value, coordinator.defaultHost);
    if (!coordinator.state.hasHost(host)) throw new HostNotFoundError(host);
    return host;
  };
  const optionalHost = (value: string): string | undefined => (value === '' ? undefined : knownHost(value));
  const hostInfo = (name: string) => {
    const info = wire.hostInfo(coordinator.state.host(name), registry.connectedCount(name));
    // Placement is the coordinator's own host's: another host's is its own coordinator's to say.
    if (name !== coordinator.defaultHost) return info;
    const connected = new Set(registry.list(name).flatMap((a) => (a.connected ? [a.record.vm] : [])));
    return { ...info, ...wire.placement(placement.sourceKind, placement.vms(), connected) };
  };
  /** The signal an agent's VM is judged by now, for people: its last report under its host's policy. */
  const loadSignal = (a: AgentState) => {
    const host = a.record.host;
    if (!a.lastLoad) return '';
    const policy = coordinator.state.hasHost(host) ? coordinator.state.host(host).policy : DEFAULT_POLICY;
    return SIGNAL_SOURCE_LABEL[signalSource(completePolicy(policy), waitFigures(a.lastLoad))];
  };
  const historyEvent = (r: HistoryRecord) => wire.historyEvent(r, placement.nameOf(r.vm));

  return {
    ...snapshotService({ ...snapshots, vms: placement, log }),

    ListHosts: unary(log, () => ({ hosts: coordinator.state.hostNames().map(hostInfo) })),

    ListAgents: unary(log, (req: v1.ListAgentsRequest__Output) => ({
      agents: registry.list(optionalHost(req.host)).map((a): v1.AgentInfo => ({
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
    })),

    ListTokens: unary(log, (req: v1.ListTokensRequest__Output) => {
      const host = optionalHost(req.host);
      const hosts = host ? [host] : coordinator.state.hostNames();
      return {
        active: coordinator.state.activeLeases(host).map(wire.token),
        queued: hosts.flatMap((h) => coordinator.state.waiting(h).map(wire.queuedRequest)),
      };
    }),

    ListHistory: unary(log, (req: v1.ListHistoryRequest__Output) => ({
      events: coordinator
        .history({
          host: optionalHost(req.host),
          vm: req.vm === '' ? undefined : placement.resolve('vm', validate.name('vm', req.vm)),
          limit: validate.limit('limit', req.limit, DEFAULT_HISTORY, MAX_HISTORY),
          afterSeq: req.afterSeq,
          ...validate.historyFilter(req),
        })
        .map(historyEvent),
    })),

    GetPlan: unary(log, async (req: v1.GetPlanRequest__Output) => {
      const host = knownHost(req.host);
      const horizonMs = validate.limit('horizon_ms', req.horizonMs, DEFAULT_HORIZON_MS, MAX_HORIZON_MS);
      const view = await plans.view(host, horizonMs);
      return wire.plan(host, view);
    }),

    WatchHistory: stream(log, (call: grpc.ServerWritableStream<v1.WatchHistoryRequest__Output, v1.HistoryEvent>) => {
      const host = optionalHost(call.request.host);
      // Events wait here, not in the stream's own buffer, while the reader does not read: written only
      // while the stream takes them, bounded by MAX_WATCH_BACKLOG beyond the first catch-up.
      let waiting: HistoryRecord[] = [];
      let lastQueued = call.request.afterSeq;
      // The last event handed to the stream: it reaches the reader before any status, so it is where to resume.
      let sent = lastQueued;
      let ended = false;
      const pump = () => {
        let i = 0;
        while (i < waiting.length && !ended) {
          const r = waiting[i++];
          sent = r.seq;
          if (!call.write(historyEvent(r))) break;
        }
        waiting = waiting.slice(i);
      };
      const add = (records: readonly HistoryRecord[], catchUp: boolean) => {
        for (const r of records) {
          if (r.seq <= lastQueued || (host && r.host !== host)) continue;
          lastQueued = r.seq;
          waiting.push(r);
        }
        if (!catchUp && waiting.length > MAX_WATCH_BACKLOG) {
          ended = true;
          waiting = [];
          unsubscribe();
          log.warn('ending a history watch whose reader fell behind', { peer: call.getPeer(), sent });
          call.emit(
            'error',
            resourceExhausted(`more than ${MAX_WATCH_BACKLOG} events unread: watch again with after_seq=${sent}`),
          );
          return;
        }
        if (!call.writableNeedDrain) pump();
      };
      // Subscribe first, then catch up on everything after after_seq (0: from the start), so that an event
      // committed between the caller's ListHistory and this call is neither lost nor sent twice.
      const unsubscribe = coordinator.onCommitted((_events, records) => add(records, false));
      add(coordinator.history({ host, limit: MAX_HISTORY, afterSeq: lastQueued }), true);
      call.on('drain', pump);
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    }),

    PauseHost: unary(log, async (req: v1.PauseHostRequest__Output) => {
      const host = knownHost(req.host);
      await coordinator.pause(host, validate.text('reason', req.reason) || 'paused by an administrator');
      return hostInfo(host);
    }),

    ResumeHost: unary(log, async (req: v1.ResumeHostRequest__Output) => {
      const host = knownHost(req.host);
      await coordinator.resume(host);
      return hostInfo(host);
    }),

    RevokeToken: unary(log, async (req: v1.RevokeTokenRequest__Output) => {
      const tokenId = validate.name('token_id', req.tokenId);
      const reason = validate.text('reason', req.reason) || 'revoked by an administrator';
      return { token: wire.token(await coordinator.revoke(tokenId, reason)) };
    }),

    GetPolicy: unary(log, (req: v1.GetPolicyRequest__Output) =>
      wire.policy(coordinator.state.host(knownHost(req.host)).policy),
    ),

    SetPolicy: unary(log, async (req: v1.SetPolicyRequest__Output) => {
      const host = knownHost(req.host);
      return wire.policy(
        await coordinator.setPolicy(
          host,
          validate.policyPatch(
            { ...req, vm: req.vm === '' ? '' : placement.resolve('vm', validate.name('vm', req.vm)) },
            coordinator.state.host(host).policy,
          ),
        ),
      );
    }),
  };
}

/**
 * AdminService: what headroomctl calls. Reads come from the lessor's in-memory state and the store's
 * history; changes go through the coordinator like every other operation. The snapshot calls are
 * snapshot-service.ts's.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import type { AgentRegistry } from '../service/agent-registry';
import type { Coordinator } from '../service/coordinator';
import type { PlacementMonitor } from '../service/placement-monitor';
import type { PlanKeeper } from '../planning/plan-keeper';
import type { HistoryRecord } from '../store/store';
import { MAX_HISTORY, adminReads } from './admin-reads';
import { resourceExhausted } from './call-guard';
import { type SnapshotServiceOptions, snapshotService } from './snapshot-service';
import { MAX_WATCH_BACKLOG } from './limits';
import { stream, unary } from './handler';
import * as validate from './validate';
import * as wire from './wire';
import type * as v1 from '../../proto/generated/headroom/v1';

/** `plans` answers GetPlan from the same input as the plan the grants follow; `snapshots` serves the snapshot calls. */
export function adminService(
  coordinator: Coordinator,
  registry: AgentRegistry,
  plans: Pick<PlanKeeper, 'view' | 'targetTimeline'>,
  log: Logger,
  snapshots: Omit<SnapshotServiceOptions, 'log' | 'vms'>,
  placement: Pick<PlacementMonitor, 'resolve' | 'nameOf' | 'placementOf'>,
  cluster?: { info(): Promise<v1.ClusterInfo> },
): v1.AdminServiceHandlers {
  const reads = adminReads(coordinator, registry, plans, placement);
  const { knownHost, hostInfo, historyEvent, optionalHost } = reads;

  return {
    ...snapshotService({ ...snapshots, vms: placement, log }),

    ListHosts: unary(log, () => ({ hosts: reads.hosts() })),

    GetCluster: unary(log, () => cluster?.info() ?? { clustered: false, name: '', members: [], etcd: [] }),

    ListAgents: unary(log, (req: v1.ListAgentsRequest__Output) => ({ agents: reads.agents(req.host) })),

    ListTokens: unary(log, (req: v1.ListTokensRequest__Output) => reads.tokens(req.host)),

    ListHistory: unary(log, async (req: v1.ListHistoryRequest__Output) => ({ events: await reads.history(req) })),

    GetPlan: unary(log, (req: v1.GetPlanRequest__Output) => reads.plan(req)),

    ListTargets: unary(log, () => ({ targets: reads.targets() })),

    WatchHistory: stream(
      log,
      (call: grpc.ServerWritableStream<v1.WatchHistoryRequest__Output, v1.HistoryEvent>, fail) => {
        const host = optionalHost(call.request.host);
        // Events wait here, not in the stream's own buffer, while the reader does not read: written only
        // while the stream takes them, bounded by MAX_WATCH_BACKLOG beyond the first catch-up.
        let waiting: HistoryRecord[] = [];
        // The last event handed to the stream: it reaches the reader before any status, so it is where to resume.
        let sent = call.request.afterSeq;
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
          waiting.push(...records);
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
        // Everything after after_seq (0: from the start), then what comes: an event committed between the
        // caller's ListHistory and this call is neither lost nor sent twice.
        const unsubscribe = coordinator.watchHistory({ host, limit: MAX_HISTORY, afterSeq: sent }, add, fail);
        call.on('drain', pump);
        call.on('cancelled', unsubscribe);
        call.on('close', unsubscribe);
      },
    ),

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

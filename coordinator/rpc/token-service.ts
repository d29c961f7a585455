/**
 * TokenService: acquire (a server stream of QUEUED updates, then GRANTED or DENIED), renew and release;
 * quiesce and thaw the guest of a HYPERVISOR token (../quiesce-broker.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import type { Coordinator } from '../service/coordinator';
import { NotQuiescableError } from '../domain/errors';
import type { AcquireInput, Lease } from '../domain/lease';
import type { QuiesceBroker } from '../service/quiesce-broker';
import type { VmResolver } from '../service/placement-monitor';
import { stream, unary } from './handler';
import * as validate from './validate';
import * as wire from './wire';
import type * as v1 from '../../proto/generated/headroom/v1';

/**
 * The lease whose guest Quiesce/Thaw acts on: active, presented with its current fencing number, HYPERVISOR.
 * @throws TokenNotFoundError, TokenEndedError, StaleFencingTokenError, NotQuiescableError
 */
function quiescableLease(coordinator: Coordinator, tokenId: string, fencing: number): Lease {
  const lease = coordinator.state.holder(tokenId, fencing);
  if (lease.kind !== 'HYPERVISOR')
    throw new NotQuiescableError(
      tokenId,
      `it is a ${lease.kind} token; only a HYPERVISOR token's guest is quiesced for a snapshot`,
    );
  if (!lease.vm) throw new NotQuiescableError(tokenId, 'it names no VM');
  return lease;
}

/**
 * `jobTarget`: the shared target a request that names none writes to by its job (a hypervisorJobs entry's
 * sharedTarget), so that a vzdump hook or host-backup run for a configured job is held to it unasked.
 */
export function tokenService(
  coordinator: Coordinator,
  quiesce: Pick<QuiesceBroker, 'quiesce' | 'thaw'>,
  log: Logger,
  vms: Pick<VmResolver, 'resolve'>,
  jobTarget: (request: Pick<AcquireInput, 'kind' | 'host' | 'job'>) => string | undefined = () => undefined,
): v1.TokenServiceHandlers {
  return {
    Acquire: stream(log, (call: grpc.ServerWritableStream<v1.AcquireRequest__Output, v1.AcquireUpdate>, fail) => {
      const request = validate.acquireRequest(call.request, coordinator.defaultHost);
      // A libvirt name, a Proxmox VMID or the UUID: one VM to every rule (placement-monitor.ts).
      const target = request.target ?? jobTarget(request);
      const input = { ...request, vm: vms.resolve('vm', request.vm), ...(target ? { target } : {}) };
      let done = false;
      const finish = (update: v1.AcquireUpdate) => {
        if (done) return;
        done = true;
        if (!call.cancelled) {
          call.write(update);
          call.end();
        }
      };
      const failOnce = (error: unknown) => {
        if (done) return;
        done = true;
        fail(error);
      };
      let withdraw = () => {};
      call.on('cancelled', () => {
        done = true;
        withdraw();
      });
      coordinator
        .acquire(input, {
          queued: (info) => {
            // Each update supersedes the last: while the caller does not read, skip them instead of piling them up.
            if (done || call.cancelled || call.writableNeedDrain) return;
            call.write({
              queued: wire.queued(info),
            });
          },
          granted: (lease) => finish({ granted: wire.token(lease) }),
          denied: (reason, message) => finish({ denied: wire.denied(reason, message) }),
          failed: failOnce,
        })
        .then((w) => {
          withdraw = w;
          if (call.cancelled) w();
        })
        .catch(failOnce);
    }),

    Renew: unary(log, async (req: v1.RenewRequest__Output) => {
      const ref = validate.tokenRef(req);
      const lease = await coordinator.renew(ref.tokenId, ref.fencing);
      return { expiresUnixMs: lease.expiresAt, ttlMs: lease.ttlMs, budget: lease.budget };
    }),

    Release: unary(log, async (req: v1.ReleaseRequest__Output) => {
      const ref = validate.tokenRef(req);
      await coordinator.release(ref.tokenId, ref.fencing, validate.outcome(req.outcome));
      return {};
    }),

    Quiesce: unary(log, (req: v1.QuiesceRequest__Output) => {
      const input = validate.quiesceRequest(req);
      return quiesce
        .quiesce(quiescableLease(coordinator, input.tokenId, input.fencing), input.holdMs, input.timeoutMs)
        .then(wire.quiesceAnswer);
    }),

    Thaw: unary(log, (req: v1.ThawRequest__Output) => {
      const ref = validate.tokenRef(req);
      return quiesce.thaw(quiescableLease(coordinator, ref.tokenId, ref.fencing)).then(wire.thawAnswer);
    }),
  };
}

/**
 * TokenService: acquire (a server stream of QUEUED updates, then GRANTED or DENIED), renew and release;
 * quiesce and thaw the guest of a HYPERVISOR token (../quiesce-broker.ts).
 */
import type { Logger } from '../../common/util/log';
import type { Coordinator } from '../service/coordinator';
import { NotQuiescableError } from '../domain/errors';
import type { Lease } from '../domain/lease';
import type { QuiesceBroker } from '../service/quiesce-broker';
import { toServiceError } from './status';
import * as validate from './validate';
import * as wire from './wire';
import type * as v1 from '../../proto/generated/headroom/v1';

/**
 * The lease whose guest Quiesce/Thaw acts on: active, presented with its current fencing number, HYPERVISOR.
 * @throws TokenNotFoundError, TokenEndedError, StaleFencingTokenError, NotQuiescableError
 */
function quiescableLease(coordinator: Coordinator, tokenId: string, fencing: number): Lease {
  const lease = coordinator.state.holder(tokenId, fencing);
  if (lease.kind !== 'HYPERVISOR') throw new NotQuiescableError(tokenId, `it is a ${lease.kind} token; only a HYPERVISOR token's guest is quiesced for a snapshot`);
  if (!lease.vm) throw new NotQuiescableError(tokenId, 'it names no VM');
  return lease;
}

export function tokenService(coordinator: Coordinator, quiesce: Pick<QuiesceBroker, 'quiesce' | 'thaw'>, log: Logger): v1.TokenServiceHandlers {
  return {
    Acquire(call) {
      let input;
      try {
        input = validate.acquireRequest(call.request, coordinator.defaultHost);
      } catch (e) {
        call.emit('error', toServiceError(e, log, 'Acquire'));
        return;
      }
      let done = false;
      const finish = (update: v1.AcquireUpdate) => {
        if (done) return;
        done = true;
        if (!call.cancelled) {
          call.write(update);
          call.end();
        }
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
              queued: {
                position: info.position,
                estimatedStartUnixMs: info.estimatedStart,
                waitingFor: info.waitingFor,
              },
            });
          },
          granted: (lease) => finish({ granted: wire.token(lease) }),
          denied: (reason, message) => finish({ denied: wire.denied(reason, message) }),
          failed: (error) => {
            if (done) return;
            done = true;
            call.emit('error', toServiceError(error, log, 'Acquire'));
          },
        })
        .then((w) => {
          withdraw = w;
          if (call.cancelled) w();
        })
        .catch((e) => {
          if (done) return;
          done = true;
          call.emit('error', toServiceError(e, log, 'Acquire'));
        });
    },

    Renew(call, callback) {
      let ref;
      try {
        ref = validate.tokenRef(call.request);
      } catch (e) {
        callback(toServiceError(e, log, 'Renew'));
        return;
      }
      coordinator.renew(ref.tokenId, ref.fencing).then(
        (lease) => callback(null, { expiresUnixMs: lease.expiresAt, ttlMs: lease.ttlMs, budget: lease.budget }),
        (e) => callback(toServiceError(e, log, 'Renew')),
      );
    },

    Release(call, callback) {
      let ref;
      let outcome;
      try {
        ref = validate.tokenRef(call.request);
        outcome = validate.outcome(call.request.outcome);
      } catch (e) {
        callback(toServiceError(e, log, 'Release'));
        return;
      }
      coordinator.release(ref.tokenId, ref.fencing, outcome).then(
        () => callback(null, {}),
        (e) => callback(toServiceError(e, log, 'Release')),
      );
    },

    Quiesce(call, callback) {
      let lease;
      let input;
      try {
        input = validate.quiesceRequest(call.request);
        lease = quiescableLease(coordinator, input.tokenId, input.fencing);
      } catch (e) {
        callback(toServiceError(e, log, 'Quiesce'));
        return;
      }
      quiesce.quiesce(lease, input.holdMs, input.timeoutMs).then(
        (answer) => callback(null, wire.quiesceAnswer(answer)),
        (e) => callback(toServiceError(e, log, 'Quiesce')),
      );
    },

    Thaw(call, callback) {
      let lease;
      try {
        const ref = validate.tokenRef(call.request);
        lease = quiescableLease(coordinator, ref.tokenId, ref.fencing);
      } catch (e) {
        callback(toServiceError(e, log, 'Thaw'));
        return;
      }
      quiesce.thaw(lease).then(
        (answer) => callback(null, wire.thawAnswer(answer)),
        (e) => callback(toServiceError(e, log, 'Thaw')),
      );
    },
  };
}

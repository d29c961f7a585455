/**
 * The benchmarks' token client: one GUEST acquire awaited to its answer, and failures named for counting.
 * Shared by bench:grant's and bench:load's client processes.
 */
import * as grpc from '@grpc/grpc-js';
import { type Clients, UNARY_DEADLINE_MS, deadlineIn } from '../common/client/connection';
import type { v1 } from '../proto';

/** DENIED, or a stream that ended without an answer. */
class AcquireFailure extends Error {}

/** Acquire until GRANTED. Resolves with the token; rejects with the call's error or AcquireFailure on DENIED. */
export function acquireToken(
  clients: Clients,
  spec: { host: string; vm: string },
  requestId: string,
): Promise<v1.Token__Output> {
  return new Promise((resolve, reject) => {
    const call = clients.token.Acquire(
      { requestId, kind: 'TOKEN_KIND_GUEST', host: spec.host, vm: spec.vm, job: 'bench', expectedDurationMs: 1_000 },
      { deadline: deadlineIn(UNARY_DEADLINE_MS) },
    );
    let settled = false;
    call.on('data', (u: v1.AcquireUpdate__Output) => {
      if (settled) return;
      if (u.granted) {
        settled = true;
        resolve(u.granted);
      } else if (u.denied) {
        settled = true;
        reject(new AcquireFailure(`DENIED:${u.denied.reason}`));
      }
    });
    call.on('error', (e) => {
      if (!settled) reject(e);
      settled = true;
    });
    call.on('end', () => {
      if (!settled) reject(new AcquireFailure('stream ended without an answer'));
      settled = true;
    });
  });
}

/** A failure as the benchmarks count it: the gRPC status name, `DENIED:<reason>`, or the message. */
export function describeError(e: unknown): string {
  if (e instanceof AcquireFailure) return e.message;
  const code = (e as grpc.ServiceError).code;
  return code !== undefined ? grpc.status[code] : (e as Error).message;
}

/**
 * A plain gRPC client for tests: connects to a coordinator on loopback and wraps Acquire's stream in a
 * promise, recording every update it got.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../common/client/connection';
import { type AcquireHooks, type Acquired, acquireToken } from '../../common/client/token-acquirer';
import { systemClock } from '../../common/util/clock';
import { createLogger } from '../../common/util/log';
import type { v1 } from '../../proto';

export function connectPlain(address: string): Clients {
  return connect(address, grpc.credentials.createInsecure());
}

export interface AcquireCall {
  /** Resolves with the final update (granted or denied); rejects with the call's error status. */
  done: Promise<v1.AcquireUpdate__Output>;
  updates: v1.AcquireUpdate__Output[];
  cancel(): void;
}

export function acquire(clients: Clients, request: Partial<v1.AcquireRequest>): AcquireCall {
  const updates: v1.AcquireUpdate__Output[] = [];
  const call = clients.token.Acquire({
    requestId: randomUUID(),
    kind: 'TOKEN_KIND_GUEST',
    vm: 'vm1',
    job: 'test',
    expectedDurationMs: 60_000,
    ...request,
  });
  const done = new Promise<v1.AcquireUpdate__Output>((resolve, reject) => {
    call.on('data', (u: v1.AcquireUpdate__Output) => {
      updates.push(u);
      if (u.granted || u.denied) resolve(u);
    });
    call.on('error', reject);
    call.on('end', () => reject(new Error('acquire stream ended without an answer')));
  });
  done.catch(() => {});
  return { done, updates, cancel: () => call.cancel() };
}

/**
 * Waits for a token as the product's clients do (token-acquirer.ts): the same request id on every attempt,
 * retried while the coordinator is unreachable or changing leader.
 */
export function acquireRetrying(
  clients: Clients,
  request: Partial<v1.AcquireRequest> & Pick<v1.AcquireRequest, 'requestId' | 'host' | 'vm'>,
  hooks: AcquireHooks = {},
): Promise<Acquired> {
  return acquireToken(
    {
      client: clients.token,
      clock: systemClock,
      log: createLogger({ level: 'silent' }),
      backoff: { initialMs: 100, maxMs: 1_000 },
      hooks,
    },
    { kind: 'TOKEN_KIND_GUEST', job: 'test', expectedDurationMs: 1_000, ...request },
  );
}

/** The token of a grant; throws naming what came instead. */
export function grantedToken(acquired: Acquired): v1.Token__Output {
  if (acquired.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(acquired)}`);
  return acquired.token;
}

/** Acquires and expects a grant; returns the token. */
export async function grant(clients: Clients, request: Partial<v1.AcquireRequest>): Promise<v1.Token__Output> {
  const update = await acquire(clients, request).done;
  if (!update.granted) throw new Error(`expected a grant, got ${JSON.stringify(update)}`);
  return update.granted;
}

export function renew(clients: Clients, token: { tokenId: string; fencing: number }) {
  return unary(clients.token.Renew.bind(clients.token), { tokenId: token.tokenId, fencing: token.fencing });
}

/** `outcome`: what the holder says of its run beyond success (bytes, duration, consistency). */
export function release(
  clients: Clients,
  token: { tokenId: string; fencing: number },
  success = true,
  outcome: Partial<v1.Outcome> = {},
) {
  return unary(clients.token.Release.bind(clients.token), {
    tokenId: token.tokenId,
    fencing: token.fencing,
    outcome: { success, exitCode: success ? 0 : 1, durationMs: 1, ...outcome },
  });
}

/** The gRPC status code a promise rejects with. */
export async function statusOf(p: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    return { code: err.code, details: err.details };
  }
  throw new Error('expected the call to fail');
}

/**
 * Hand-written fakes for the guarded-run tests: a TokenService client whose answers the test decides, and
 * a child process that exits when the test says so. Both record what was asked of them and when.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { v1 } from '../../../../proto';
import type { ChildExit, RunningChild, SpawnChildOptions } from '../../../../common/backup-run/child-process';
import type { TokenClient } from '../../../../common/client/connection';
import { createLogger, Logger } from '../../../../common/util/log';

export function grpcError(code: grpc.status, details = grpc.status[code]): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), {
    code,
    details,
    metadata: new grpc.Metadata(),
  });
}

export class FakeAcquireCall extends EventEmitter {
  cancelled = false;
  constructor(readonly request: v1.AcquireRequest) {
    super();
  }
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    process.nextTick(() => this.emit('error', grpcError(grpc.status.CANCELLED, 'Cancelled on client')));
  }
  queued(position: number, waitingFor = 'another backup'): void {
    this.emit('data', { update: 'queued', queued: { position, estimatedStartUnixMs: 0, waitingFor } });
  }
  grant(token: v1.Token__Output): void {
    this.emit('data', { update: 'granted', granted: token });
    this.emit('end');
  }
  deny(reason: v1.DenyReason__Output, message = ''): void {
    this.emit('data', { update: 'denied', denied: { reason, message } });
    this.emit('end');
  }
  fail(code: grpc.status, details?: string): void {
    this.emit('error', grpcError(code, details));
  }
}

type Answer<T> = { error: grpc.ServiceError } | { response: T } | 'hang';

export function token(partial: Partial<v1.Token__Output> = {}): v1.Token__Output {
  const granted = Date.now();
  return {
    tokenId: 'tok-1',
    fencing: 7,
    target: '',
    kind: 'TOKEN_KIND_GUEST',
    host: 'host-a',
    vm: 'vm-1',
    job: 'nightly',
    requestId: 'req',
    slot: null,
    grantedUnixMs: granted,
    expiresUnixMs: granted + 30_000,
    ttlMs: 30_000,
    priority: 0,
    budget: null,
    ...partial,
  };
}

export class FakeTokenClient {
  readonly acquires: FakeAcquireCall[] = [];
  readonly renews: { request: v1.RenewRequest; at: number; deadline: number }[] = [];
  readonly releases: { request: v1.ReleaseRequest; at: number }[] = [];
  /** What happens to each Acquire; default: granted right away. */
  onAcquire: (call: FakeAcquireCall, n: number) => void = (call) =>
    call.grant(token({ requestId: call.request.requestId }));
  renewAnswer: (n: number) => Answer<v1.RenewResponse__Output> = () => ({
    response: { expiresUnixMs: 0, ttlMs: 30_000, budget: null },
  });
  releaseAnswer: (n: number) => Answer<v1.ReleaseResponse__Output> = () => ({ response: {} });

  Acquire(request: v1.AcquireRequest): FakeAcquireCall {
    const call = new FakeAcquireCall(request);
    const n = this.acquires.push(call);
    process.nextTick(() => this.onAcquire(call, n));
    return call;
  }

  Renew(
    request: v1.RenewRequest,
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: v1.RenewResponse__Output) => void,
  ): void {
    const deadline = (options.deadline as Date).getTime();
    const n = this.renews.push({ request, at: Date.now(), deadline });
    this.answer(this.renewAnswer(n), deadline, cb);
  }

  Release(
    request: v1.ReleaseRequest,
    options: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: v1.ReleaseResponse__Output) => void,
  ): void {
    const n = this.releases.push({ request, at: Date.now() });
    this.answer(this.releaseAnswer(n), (options.deadline as Date).getTime(), cb);
  }

  private answer<T>(a: Answer<T>, deadline: number, cb: (err: grpc.ServiceError | null, res?: T) => void): void {
    if (a === 'hang') {
      // As grpc-js does: the call fails with DEADLINE_EXCEEDED when its deadline passes.
      setTimeout(() => cb(grpcError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded')), deadline - Date.now());
      return;
    }
    process.nextTick(() => ('error' in a ? cb(a.error) : cb(null, a.response)));
  }

  asClient(): TokenClient {
    return this as unknown as TokenClient;
  }
}

/** A command that runs until the test ends it, recording signals and stops with their times. */
export class FakeChild implements RunningChild {
  readonly pid = 4242;
  readonly exited: Promise<ChildExit>;
  readonly signals: { signal: NodeJS.Signals; at: number }[] = [];
  readonly stops: { graceMs: number; at: number }[] = [];
  /** Called on signalGroup; by default the command ignores signals. */
  onSignal?: (signal: NodeJS.Signals) => void;
  private resolveExit!: (exit: ChildExit) => void;
  private ended = false;

  constructor(
    readonly argv: readonly string[],
    readonly options: SpawnChildOptions = {},
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.ended) return;
    this.ended = true;
    const exitCode = code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGINT' ? 130 : 143);
    this.resolveExit({ code, signal, exitCode });
  }

  signalGroup(signal: NodeJS.Signals): boolean {
    this.signals.push({ signal, at: Date.now() });
    this.onSignal?.(signal);
    return !this.ended;
  }

  /** Like the real one: the first call stops, later calls return the same promise. */
  stop(graceMs: number): Promise<ChildExit> {
    if (this.stops.length > 0) return this.exited;
    this.stops.push({ graceMs, at: Date.now() });
    this.exit(null, 'SIGTERM');
    return this.exited;
  }

  stopLeftovers(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

/** A spawn function for GuardedRunOptions.spawn that hands out FakeChild instances. */
export function fakeSpawner() {
  const children: FakeChild[] = [];
  const spawn = (argv: readonly string[], options?: SpawnChildOptions) => {
    const c = new FakeChild(argv, options);
    children.push(c);
    return c;
  };
  return { children, spawn };
}

export function captureLog(): { lines: Record<string, unknown>[]; log: Logger } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(JSON.parse(l)) }) };
}

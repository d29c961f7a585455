/**
 * A minimal coordinator for focused agent tests: a real grpc-js server on 127.0.0.1:0 implementing
 * TokenService and AgentService from the proto, whose answers the test decides (refuse renewals, hang,
 * deny, queue) and which records everything the agent sent.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { headroomV1 } from '../../../proto';
import type { v1 } from '../../../proto';

type SessionCall = grpc.ServerDuplexStream<v1.AgentMessage__Output, v1.CoordinatorMessage>;
type AcquireCall = grpc.ServerWritableStream<v1.AcquireRequest__Output, v1.AcquireUpdate>;

export class FakeCoordinator {
  readonly server = new grpc.Server();
  address = '';
  readonly hellos: v1.Hello__Output[] = [];
  readonly loads: v1.LoadReport__Output[] = [];
  readonly acks: v1.CommandAck__Output[] = [];
  readonly acquires: { request: v1.AcquireRequest__Output; call: AcquireCall; cancelled: boolean }[] = [];
  readonly grants: { token: v1.Token; at: number }[] = [];
  readonly renews: { request: v1.RenewRequest__Output; at: number }[] = [];
  readonly releases: { request: v1.ReleaseRequest__Output; at: number }[] = [];
  readonly sessions: SessionCall[] = [];
  ttlMs = 3_000;
  reportIntervalMs = 1_000;
  /** How Acquire answers; default: granted at once. */
  onAcquire: (request: v1.AcquireRequest__Output, call: AcquireCall) => void = (request, call) =>
    this.grant(request, call);
  /** How Renew answers: a status code to fail with, 'hang' to never answer, or undefined to renew. */
  renewFailure?: grpc.status | 'hang';
  private fencing = 0;

  async start(): Promise<this> {
    this.server.addService(headroomV1.TokenService.service, {
      Acquire: (call: AcquireCall) => {
        const entry = { request: call.request, call, cancelled: false };
        this.acquires.push(entry);
        call.on('cancelled', () => (entry.cancelled = true));
        this.onAcquire(call.request, call);
      },
      Renew: (
        call: grpc.ServerUnaryCall<v1.RenewRequest__Output, v1.RenewResponse>,
        cb: grpc.sendUnaryData<v1.RenewResponse>,
      ) => {
        this.renews.push({ request: call.request, at: Date.now() });
        if (this.renewFailure === 'hang') return;
        if (this.renewFailure !== undefined) {
          cb({ code: this.renewFailure, details: 'stale fencing token (fake)' });
          return;
        }
        cb(null, { expiresUnixMs: Date.now() + this.ttlMs, ttlMs: this.ttlMs });
      },
      Release: (
        call: grpc.ServerUnaryCall<v1.ReleaseRequest__Output, v1.ReleaseResponse>,
        cb: grpc.sendUnaryData<v1.ReleaseResponse>,
      ) => {
        this.releases.push({ request: call.request, at: Date.now() });
        cb(null, {});
      },
    });
    this.server.addService(headroomV1.AgentService.service, {
      Session: (call: SessionCall) => {
        this.sessions.push(call);
        call.on('data', (m: v1.AgentMessage__Output) => {
          if (m.hello) {
            this.hellos.push(m.hello);
            call.write({
              settings: {
                host: m.hello.host || 'host-fake',
                vm: m.hello.vm,
                reportIntervalMs: this.reportIntervalMs,
                leaseTtlMs: this.ttlMs,
              },
            });
          } else if (m.load) this.loads.push(m.load);
          else if (m.ack) this.acks.push(m.ack);
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    this.address = `127.0.0.1:${port}`;
    return this;
  }

  grant(request: v1.AcquireRequest__Output, call: AcquireCall): v1.Token {
    const now = Date.now();
    const token: v1.Token = {
      tokenId: randomUUID(),
      fencing: ++this.fencing,
      kind: request.kind,
      host: request.host || 'host-fake',
      vm: request.vm,
      job: request.job,
      requestId: request.requestId,
      slot: {
        startUnixMs: now,
        expectedEndUnixMs: now + request.expectedDurationMs,
        windowEndUnixMs: Number(request.windowEndUnixMs),
      },
      grantedUnixMs: now,
      expiresUnixMs: now + this.ttlMs,
      ttlMs: this.ttlMs,
      priority: request.priority,
    };
    this.grants.push({ token, at: now });
    call.write({ granted: token });
    call.end();
    return token;
  }

  /** Pushes a command to every connected agent. */
  command(command: v1.Command): void {
    for (const s of this.sessions) if (!s.cancelled && s.writable) s.write({ command });
  }

  revoke(token: v1.Token, reason = 'revoked by the test'): string {
    const commandId = randomUUID();
    this.command({ commandId, revoke: { tokenId: token.tokenId, fencing: token.fencing, reason } });
    return commandId;
  }

  stop(): Promise<void> {
    this.server.forceShutdown();
    return Promise.resolve();
  }
}

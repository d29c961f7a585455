/**
 * A client process of the grant benchmark, forked by grant.ts. It holds a share of the simulated
 * clients, each with its own gRPC channel and TCP connection, and runs acquire→release cycles on the
 * driver's command: open loop (fixed schedule, whatever the answers do) or closed loop (each client as
 * fast as it can). It measures and reports; it decides nothing about the figures.
 */
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, deadlineIn, unary } from '../common/client/connection';
import { acquireToken, describeError } from './grant-client';
import type {
  ClientSpec,
  DriverMessage,
  GcPauses,
  PhaseSpec,
  WorkerMessage,
  WorkerPhaseResult,
} from './grant-protocol';

/** Channels connected at once, so that 250 handshakes do not arrive in one burst. */
const CONNECT_CONCURRENCY = 25;
/** Pause after a failed cycle in the closed loop, so that a failing coordinator is not hammered. */
const ERROR_PAUSE_MS = 10;

interface Client {
  spec: ClientSpec;
  clients: Clients;
  busy: boolean;
  seq: number;
}

let clients: Client[] = [];

function send(message: WorkerMessage): void {
  process.send!(message);
}

function waitForReady(c: Clients): Promise<void> {
  return new Promise((resolve, reject) => c.token.waitForReady(deadlineIn(), (err) => (err ? reject(err) : resolve())));
}

async function connectAll(address: string, specs: ClientSpec[]): Promise<void> {
  const credentials = grpc.credentials.createInsecure();
  clients = specs.map((spec) => ({
    spec,
    // A local subchannel pool gives every channel its own subchannel, hence its own TCP connection;
    // otherwise grpc-js would share one connection among all channels to the same address.
    clients: connect(address, credentials, { 'grpc.use_local_subchannel_pool': 1 }),
    busy: false,
    seq: 0,
  }));
  for (let i = 0; i < clients.length; i += CONNECT_CONCURRENCY) {
    await Promise.all(clients.slice(i, i + CONNECT_CONCURRENCY).map((c) => waitForReady(c.clients)));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runPhase(phase: PhaseSpec): Promise<WorkerPhaseResult> {
  const measureFrom = phase.startAtMs + phase.warmupMs;
  const endAt = measureFrom + phase.durationMs;
  const inWindow = (t: number) => t >= measureFrom && t < endAt;
  const acquireUs: number[] = [];
  const releaseUs: number[] = [];
  const grantsPerSecond: number[] = new Array(Math.ceil(phase.durationMs / 1000)).fill(0);
  const errors = new Map<string, number>();
  const tokenIds: string[] = [];
  const lagsUs: number[] = [];
  let startedInWindow = 0;
  let grantsInWindow = 0;
  let skippedTicks = 0;
  let released = 0;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  // A pause of this process delays every answer it is waiting for: record them to tell client-side
  // delays from the coordinator's.
  const eventLoop = monitorEventLoopDelay({ resolution: 1 });
  const gcPauses: GcPauses = { count: 0, totalMs: 0, maxMs: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (!inWindow(Date.now())) continue;
      gcPauses.count++;
      gcPauses.totalMs += e.duration;
      gcPauses.maxMs = Math.max(gcPauses.maxMs, e.duration);
    }
  });
  const monitorTimer = setTimeout(
    () => {
      eventLoop.reset();
      eventLoop.enable();
      gcObserver.observe({ entryTypes: ['gc'] });
    },
    Math.max(0, measureFrom - Date.now()),
  );

  /** One acquire→release cycle. Never rejects: failures are counted. */
  const cycle = async (c: Client): Promise<boolean> => {
    c.busy = true;
    inFlight++;
    const startedAt = Date.now();
    const measured = inWindow(startedAt);
    if (measured) startedInWindow++;
    try {
      const t0 = process.hrtime.bigint();
      const token = await acquireToken(c.clients, c.spec, `bench-${phase.tag}-${c.spec.index}-${++c.seq}`);
      const t1 = process.hrtime.bigint();
      tokenIds.push(token.tokenId);
      const grantedAt = Date.now();
      if (inWindow(grantedAt)) {
        grantsInWindow++;
        grantsPerSecond[Math.floor((grantedAt - measureFrom) / 1000)]++;
      }
      // Open loop: the cycles started in the window. Closed loop: the grants received in it.
      const keep = phase.kind === 'open' ? measured : inWindow(grantedAt);
      if (keep) acquireUs.push(Number(t1 - t0) / 1000);
      await unary(c.clients.token.Release.bind(c.clients.token), {
        tokenId: token.tokenId,
        fencing: token.fencing,
        outcome: { success: true, exitCode: 0, durationMs: 0, bytes: 0 },
      });
      released++;
      if (keep) releaseUs.push(Number(process.hrtime.bigint() - t1) / 1000);
      return true;
    } catch (e) {
      const what = describeError(e);
      errors.set(what, (errors.get(what) ?? 0) + 1);
      return false;
    } finally {
      c.busy = false;
      inFlight--;
      if (inFlight === 0) onIdle?.();
    }
  };

  const started = new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, phase.startAtMs - Date.now())));
  await started;

  if (phase.kind === 'open') {
    // Ticks at fixed times, whatever the answers do: a slow coordinator meets the same offered load.
    const intervalMs = 1000 / phase.ratePerSec;
    let next = phase.startAtMs + phase.offsetMs;
    let rr = 0;
    await new Promise<void>((resolve) => {
      const fire = () => {
        const now = Date.now();
        while (next <= now && next < endAt) {
          if (next >= measureFrom) lagsUs.push((now - next) * 1000);
          let chosen: Client | undefined;
          for (let i = 0; i < clients.length && !chosen; i++) {
            const c = clients[(rr + i) % clients.length];
            if (!c.busy) chosen = c;
          }
          rr = (rr + 1) % clients.length;
          if (chosen) void cycle(chosen);
          else skippedTicks++;
          next += intervalMs;
        }
        if (next >= endAt) resolve();
        else setTimeout(fire, Math.max(0, next - Date.now()));
      };
      fire();
    });
  } else {
    await Promise.all(
      clients.map(async (c) => {
        while (Date.now() < endAt) {
          if (!(await cycle(c))) await new Promise((r) => setTimeout(r, ERROR_PAUSE_MS));
        }
      }),
    );
  }

  // Let the last cycles finish so that no token stays held into the next phase.
  if (inFlight > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, phase.drainMs);
      onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  clearTimeout(monitorTimer);
  eventLoop.disable();
  gcObserver.disconnect();
  lagsUs.sort((a, b) => a - b);
  return {
    acquireUs,
    releaseUs,
    startedInWindow,
    grantsInWindow,
    grantsPerSecond,
    skippedTicks,
    scheduleLagP99Us: percentile(lagsUs, 99),
    scheduleLagMaxUs: lagsUs.at(-1) ?? 0,
    eventLoopP99Ms: eventLoop.count > 0 ? eventLoop.percentile(99) / 1e6 : 0,
    eventLoopMaxMs: eventLoop.count > 0 ? eventLoop.max / 1e6 : 0,
    gcPauses,
    errors: [...errors].map(([what, count]) => ({ what, count })),
    tokenIds,
    released,
    unfinished: inFlight,
  };
}

process.on('message', (message: DriverMessage) => {
  const fail = (e: unknown) => send({ type: 'failed', message: (e as Error).message });
  switch (message.type) {
    case 'connect': {
      const t0 = Date.now();
      connectAll(message.address, message.clients).then(
        () => send({ type: 'connected', clients: clients.length, ms: Date.now() - t0 }),
        fail,
      );
      break;
    }
    case 'run':
      runPhase(message.phase).then((result) => send({ type: 'result', result }), fail);
      break;
    case 'close':
      for (const c of clients) c.clients.close();
      process.disconnect();
      process.exit(0);
  }
});

// The driver is gone (Ctrl-C, crash): do not linger holding 250 connections.
process.on('disconnect', () => process.exit(0));

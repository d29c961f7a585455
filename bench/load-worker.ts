/**
 * A client process of bench:load, forked by load.ts. It holds a share of the simulated agents, each with
 * its own channel and AgentService session: a hello, then a load report at the interval the coordinator
 * sets (spread over the interval, as agents booted at different times would be). On the driver's command
 * it runs token churn at a fixed rate, open loop: acquire, renew, release by an idle agent of its own.
 */
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../common/client/connection';
import type { v1 } from '../proto';
import { acquireToken, describeError } from './grant-client';
import type { AgentSpec, ChurnSpec, LoadDriverMessage, LoadWorkerMessage, LoadWorkerResult } from './load-protocol';

/** Sessions opened at once, so that hundreds of handshakes do not arrive in one burst. */
const CONNECT_CONCURRENCY = 25;

interface Agent {
  spec: AgentSpec;
  clients: Clients;
  session?: grpc.ClientDuplexStream<v1.AgentMessage, v1.CoordinatorMessage__Output>;
  open: boolean;
  busy: boolean;
  seq: number;
}

let agents: Agent[] = [];
const timers: NodeJS.Timeout[] = [];
let loadReports = 0;
let commands = 0;
const errors = new Map<string, number>();

function send(message: LoadWorkerMessage): void {
  process.send!(message);
}

function count(error: unknown): void {
  const what = describeError(error);
  errors.set(what, (errors.get(what) ?? 0) + 1);
}

/** A plausible, slowly varying load sample. */
function sample(i: number): v1.LoadReport {
  const cpu = 5 + ((Date.now() / 1000 + i * 7) % 25);
  return {
    sampledUnixMs: Date.now(),
    cpuPercent: cpu,
    memUsedBytes: 1_500_000_000,
    memTotalBytes: 4_000_000_000,
    diskReadBytesPerSec: 2_000_000,
    diskWriteBytesPerSec: 1_000_000,
    netRxBytesPerSec: 100_000,
    netTxBytesPerSec: 50_000,
    load1: cpu / 25,
    load5: cpu / 30,
    load15: cpu / 35,
  };
}

/** Opens the session, says hello, resolves on the settings and then reports load at their interval. */
function startSession(agent: Agent, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = agent.clients.agent.Session();
    agent.session = session;
    let settled = false;
    session.on('data', (m: v1.CoordinatorMessage__Output) => {
      if (m.command) commands++;
      if (!m.settings || settled) return;
      settled = true;
      agent.open = true;
      const interval = m.settings.reportIntervalMs;
      // Spread the first reports over one interval; then every interval.
      const first = setTimeout(() => {
        const report = () => {
          if (!agent.open) return;
          session.write({ load: sample(index) });
          loadReports++;
        };
        report();
        timers.push(setInterval(report, interval));
      }, Math.random() * interval);
      timers.push(first);
      resolve();
    });
    session.on('error', (e) => {
      agent.open = false;
      if (!settled) reject(e);
      else if ((e as grpc.ServiceError).code !== grpc.status.CANCELLED) count(e);
    });
    session.on('end', () => (agent.open = false));
    session.write({
      hello: {
        vm: agent.spec.vm,
        host: agent.spec.host,
        agentVersion: 'bench-load',
        hostname: agent.spec.vm,
        jobs: [],
      },
    });
  });
}

async function connectAll(address: string, specs: AgentSpec[]): Promise<void> {
  const credentials = grpc.credentials.createInsecure();
  // A local subchannel pool gives every agent its own TCP connection, as separate VMs have.
  agents = specs.map((spec) => ({
    spec,
    clients: connect(address, credentials, { 'grpc.use_local_subchannel_pool': 1 }),
    open: false,
    busy: false,
    seq: 0,
  }));
  for (let i = 0; i < agents.length; i += CONNECT_CONCURRENCY) {
    await Promise.all(agents.slice(i, i + CONNECT_CONCURRENCY).map((a, j) => startSession(a, i + j)));
  }
}

async function churn(spec: ChurnSpec): Promise<LoadWorkerResult> {
  const measureFrom = spec.startAtMs + spec.warmupMs;
  const endAt = measureFrom + spec.durationMs;
  const acquireUs: number[] = [];
  const renewUs: number[] = [];
  const releaseUs: number[] = [];
  let cycles = 0;
  let skippedTicks = 0;
  let inFlight = 0;
  const us = (from: bigint) => Number(process.hrtime.bigint() - from) / 1000;

  const cycle = async (a: Agent, measured: boolean) => {
    a.busy = true;
    inFlight++;
    try {
      let t = process.hrtime.bigint();
      const token = await acquireToken(a.clients, a.spec, `load-${a.spec.vm}-${++a.seq}`);
      if (measured) acquireUs.push(us(t));
      t = process.hrtime.bigint();
      await unary(a.clients.token.Renew.bind(a.clients.token), { tokenId: token.tokenId, fencing: token.fencing });
      if (measured) renewUs.push(us(t));
      t = process.hrtime.bigint();
      await unary(a.clients.token.Release.bind(a.clients.token), {
        tokenId: token.tokenId,
        fencing: token.fencing,
        outcome: { success: true, exitCode: 0, durationMs: 0, bytes: 0 },
      });
      if (measured) releaseUs.push(us(t));
      cycles++;
    } catch (e) {
      count(e);
    } finally {
      a.busy = false;
      inFlight--;
    }
  };

  await new Promise((r) => setTimeout(r, Math.max(0, spec.startAtMs - Date.now())));
  const intervalMs = 1000 / spec.ratePerSec;
  let next = spec.startAtMs + spec.offsetMs;
  let rr = 0;
  await new Promise<void>((resolve) => {
    const fire = () => {
      const now = Date.now();
      while (next <= now && next < endAt) {
        let chosen: Agent | undefined;
        for (let i = 0; i < agents.length && !chosen; i++) {
          const a = agents[(rr + i) % agents.length];
          if (!a.busy) chosen = a;
        }
        rr = (rr + 1) % agents.length;
        if (chosen) void cycle(chosen, next >= measureFrom);
        else skippedTicks++;
        next += intervalMs;
      }
      if (next >= endAt) resolve();
      else setTimeout(fire, Math.max(0, next - Date.now()));
    };
    fire();
  });
  // Let the last cycles end, so that no token is left held.
  const drainUntil = Date.now() + 10_000;
  while (inFlight > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
  return {
    acquireUs,
    renewUs,
    releaseUs,
    cycles,
    skippedTicks,
    loadReports,
    sessionsOpen: agents.filter((a) => a.open).length,
    commands,
    errors: [...errors].map(([what, n]) => ({ what, count: n })),
  };
}

process.on('message', (message: LoadDriverMessage) => {
  const fail = (e: unknown) => send({ type: 'failed', message: (e as Error).message });
  switch (message.type) {
    case 'connect': {
      const t0 = Date.now();
      connectAll(message.address, message.agents).then(
        () => send({ type: 'connected', sessions: agents.length, ms: Date.now() - t0 }),
        fail,
      );
      break;
    }
    case 'churn':
      churn(message.churn).then((result) => send({ type: 'result', result }), fail);
      break;
    case 'close':
      for (const t of timers) clearTimeout(t);
      for (const a of agents) {
        a.open = false;
        a.session?.cancel();
        a.clients.close();
      }
      process.disconnect();
      process.exit(0);
  }
});

// The driver is gone (Ctrl-C, crash): do not linger holding hundreds of connections.
process.on('disconnect', () => process.exit(0));

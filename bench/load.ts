/**
 * `npm run bench:load`: one real coordinator under a host's worth of agents. Forks client processes
 * holding `--agents` sessions in all (each its own channel and TCP connection, a hello, then a load
 * report at the coordinator's interval) and runs token churn beside them (acquire, renew, release at a
 * fixed total rate, open loop). Reports the coordinator's RSS and CPU and the acquire latency
 * percentiles against the targets (RSS < 300 MB, p99 < 20 ms). Prints figures; never fails on them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../common/client/connection';
import { DURATION_SYNTAX, parseDuration } from '../common/util/duration';
import { type RunningCoordinator, startCoordinator, tempDir } from '../test/helpers/coordinator-process';
import { machineDescription } from './grant-options';
import { percentiles } from './grant-report';
import type { AgentSpec, LoadDriverMessage, LoadWorkerMessage } from './load-protocol';
import { ProcessSampler, ensureDirFor, establishedToPort, machineCpuMs, rssBytes } from './proc-stats';
import { stopCoordinator, tearDownOnExit } from './teardown';
import { WorkerPool } from './worker-pool';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const WORKER_MAIN = path.join(__dirname, 'load-worker.js');
const PHASE_LEAD_MS = 500;
const TARGET_RSS_BYTES = 300 * 1e6;
const TARGET_P99_MS = 20;

const USAGE = `Usage: npm run bench:load -- [options]

Options (environment variable in brackets):
  --agents N                 agent sessions, one channel and TCP connection each (BENCH_AGENTS, default 2000)
  --workers N                client processes (BENCH_WORKERS, default 4)
  --hosts N                  hosts the agents spread over (BENCH_HOSTS, default 20)
  --rate N                   acquire/renew/release cycles per second in all (BENCH_RATE, default 20)
  --duration DURATION        measured window (BENCH_DURATION, default 60s)
  --warmup DURATION          churn before the window, unmeasured (BENCH_WARMUP, default 5s)
  --report-interval DURATION how often agents report load (BENCH_REPORT_INTERVAL, default 10s)
  --out FILE                 JSON results (default .bench/load.json)
  -h, --help                 show this help`;

interface LoadOptions {
  agents: number;
  workers: number;
  hosts: number;
  ratePerSec: number;
  durationMs: number;
  warmupMs: number;
  reportIntervalMs: number;
  out: string;
}

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): LoadOptions {
  const raw: Record<string, string> = {};
  const ENV: Record<string, string> = {
    agents: 'BENCH_AGENTS',
    workers: 'BENCH_WORKERS',
    hosts: 'BENCH_HOSTS',
    rate: 'BENCH_RATE',
    duration: 'BENCH_DURATION',
    warmup: 'BENCH_WARMUP',
    'report-interval': 'BENCH_REPORT_INTERVAL',
  };
  for (const [key, name] of Object.entries(ENV)) if (env[name]) raw[key] = env[name]!;
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const key = flag.replace(/^--/, '');
    if (!(key in ENV) && key !== 'out') problems.push(`unknown option ${argv[i]}`);
    else raw[key] = inline ?? argv[++i];
  }
  const int = (key: string, fallback: number, min: number, max: number) => {
    if (raw[key] === undefined) return fallback;
    const v = Number(raw[key]);
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(`--${key}: expected an integer from ${min} to ${max}, got ${raw[key]}`);
    return v;
  };
  const duration = (key: string, fallback: number) => {
    try {
      return raw[key] === undefined ? fallback : parseDuration(raw[key]);
    } catch {
      problems.push(`--${key}: expected ${DURATION_SYNTAX}, got ${raw[key]}`);
      return fallback;
    }
  };
  const o: LoadOptions = {
    agents: int('agents', 2000, 1, 9000),
    workers: int('workers', 4, 1, 64),
    hosts: int('hosts', 20, 1, 1000),
    ratePerSec: int('rate', 20, 1, 10_000),
    durationMs: duration('duration', 60_000),
    warmupMs: duration('warmup', 5_000),
    reportIntervalMs: duration('report-interval', 10_000),
    out: raw.out ?? path.join(REPO_ROOT, '.bench', 'load.json'),
  };
  if (o.workers > o.agents) problems.push(`--workers (${o.workers}) cannot exceed --agents (${o.agents})`);
  if (o.durationMs < 1000) problems.push('--duration: at least 1s');
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return o;
}

let coordinator: RunningCoordinator | undefined;
let pool: WorkerPool<LoadDriverMessage, LoadWorkerMessage> | undefined;
let admin: Clients | undefined;
let dbDir: string | undefined;

async function cleanup(): Promise<void> {
  admin?.close();
  admin = undefined;
  await pool?.close().catch(() => pool?.killAll());
  pool = undefined;
  if (coordinator) {
    const c = coordinator;
    coordinator = undefined;
    await stopCoordinator(c);
  }
  if (dbDir) fs.rmSync(dbDir, { recursive: true, force: true });
  dbDir = undefined;
}

const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const ms = (v: number) => v.toFixed(v < 10 ? 2 : 1);

async function connectedSessions(): Promise<number> {
  const hosts = await unary(admin!.admin.ListHosts.bind(admin!.admin), {});
  return hosts.hosts.reduce((s, h) => s + h.agentsConnected, 0);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const o = parseOptions(argv, process.env);
  const began = Date.now();
  const loadBefore = os.loadavg().map((l) => l.toFixed(2));
  dbDir = tempDir('headroom-bench-load-');
  progress(`starting the coordinator (durability full) for ${o.agents} agents on ${o.hosts} hosts`);
  coordinator = await startCoordinator({
    dbPath: path.join(dbDir, 'load.db'),
    host: 'load-h00',
    // Room for the churn on every host, so that the latency is the grant path's, not a wait for a slot.
    args: ['--max-guest', '100', '--report-interval', `${o.reportIntervalMs}ms`],
    env: { HEADROOM_LOG: 'warn' },
  });
  const pid = coordinator.process.pid!;
  const port = Number(coordinator.address.split(':').at(-1));
  const rssAtStart = rssBytes(pid) ?? 0;
  const sampler = new ProcessSampler(pid);
  admin = connect(coordinator.address, grpc.credentials.createInsecure());

  progress(`forking ${o.workers} client processes, opening ${o.agents} sessions`);
  pool = new WorkerPool<LoadDriverMessage, LoadWorkerMessage>(o.workers, WORKER_MAIN);
  const perWorker: AgentSpec[][] = Array.from({ length: o.workers }, () => []);
  for (let i = 0; i < o.agents; i++) {
    perWorker[i % o.workers].push({ vm: `load-vm-${i}`, host: `load-h${String(i % o.hosts).padStart(2, '0')}` });
  }
  const t0 = Date.now();
  await pool.ask(
    perWorker.map((agents) => ({ type: 'connect', address: coordinator!.address, agents })),
    'connected',
    120_000,
  );
  const connectMs = Date.now() - t0;
  const sessionsAtStart = await connectedSessions();
  const connections = establishedToPort(port);
  const rssConnected = rssBytes(pid) ?? 0;
  progress(
    `${sessionsAtStart} sessions connected (${connections} TCP connections) in ${(connectMs / 1000).toFixed(1)}s; ` +
      `churn at ${o.ratePerSec}/s: ${o.warmupMs / 1000}s warm-up, ${o.durationMs / 1000}s measured`,
  );

  const startAtMs = Date.now() + PHASE_LEAD_MS;
  const measureFrom = startAtMs + o.warmupMs;
  let cpuFrom = { machine: machineCpuMs() };
  const markTimer = setTimeout(() => {
    sampler.mark();
    cpuFrom = { machine: machineCpuMs() };
  }, measureFrom - Date.now());
  let coordinatorCpuPercent = 0;
  let machine: ReturnType<typeof machineCpuMs> | undefined;
  const markEnd = () => {
    if (machine) return;
    coordinatorCpuPercent = sampler.cpuSinceMark();
    machine = machineCpuMs();
  };
  const endTimer = setTimeout(markEnd, measureFrom + o.durationMs - Date.now());
  const answers = await pool.ask(
    pool.children.map((_, w) => ({
      type: 'churn',
      churn: {
        startAtMs,
        warmupMs: o.warmupMs,
        durationMs: o.durationMs,
        ratePerSec: o.ratePerSec / o.workers,
        offsetMs: (w * 1000) / o.ratePerSec,
      },
    })),
    'result',
    PHASE_LEAD_MS + o.warmupMs + o.durationMs + 30_000,
  );
  clearTimeout(markTimer);
  clearTimeout(endTimer);
  // The workers may answer a moment before the driver's own end-of-window timer fires.
  markEnd();
  const sessionsAtEnd = await connectedSessions();
  const coord = sampler.stop(coordinatorCpuPercent);
  const results = answers.map((a) => a.result);
  const sum = (f: (r: (typeof results)[0]) => number) => results.reduce((s, r) => s + f(r), 0);
  const errors = new Map<string, number>();
  for (const r of results) for (const e of r.errors) errors.set(e.what, (errors.get(e.what) ?? 0) + e.count);
  const acquire = percentiles(results.flatMap((r) => r.acquireUs));
  const renew = percentiles(results.flatMap((r) => r.renewUs));
  const release = percentiles(results.flatMap((r) => r.releaseUs));
  const machineTotal = Math.max(1, machine!.total - cpuFrom.machine.total);
  const machineBusyPercent = (100 * (machine!.busy - cpuFrom.machine.busy)) / machineTotal;
  const elapsedS = (Date.now() - t0) / 1000;
  const log = coordinator.log();
  await cleanup();

  const result = {
    startedAt: new Date(began).toISOString(),
    machine: { ...machineDescription(), loadAvgBefore: loadBefore },
    parameters: o,
    sessions: {
      expected: o.agents,
      connectedAtStart: sessionsAtStart,
      connectedAtEnd: sessionsAtEnd,
      tcpConnections: connections,
      connectMs,
    },
    coordinatorRssBytes: {
      afterStart: rssAtStart,
      withSessions: rssConnected,
      peak: coord.rssPeakBytes,
      end: coord.rssEndBytes,
    },
    coordinatorCpuPercent,
    machineBusyPercent,
    acquireMs: acquire,
    renewMs: renew,
    releaseMs: release,
    cyclesPerSec: sum((r) => r.cycles) / ((o.warmupMs + o.durationMs) / 1000),
    skippedTicks: sum((r) => r.skippedTicks),
    loadReportsPerSec: sum((r) => r.loadReports) / elapsedS,
    commandsPushed: sum((r) => r.commands),
    errors: [...errors].map(([what, count]) => ({ what, count })),
    coordinatorLogErrors: log.split('\n').filter((l) => / ERROR /.test(l)).length,
  };
  ensureDirFor(o.out);
  fs.writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);

  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const lines = [
    `Headroom load benchmark, ${result.startedAt}`,
    `machine      ${result.machine.cores} cores (${result.machine.cpuModel}), ${result.machine.memGiB} GiB, node ${result.machine.node}; load average before ${loadBefore.join(' ')}`,
    `coordinator  one process, durability=full, --max-guest 100 per host, log level warn`,
    `agents       ${o.agents} sessions (own channel and TCP connection each) in ${o.workers} client processes, ${o.hosts} hosts;`,
    `             hello, then a load report every ${o.reportIntervalMs / 1000}s (first ones spread over the interval)`,
    `churn        ${o.ratePerSec} acquire/renew/release cycles/s in all, open loop, GUEST tokens of the agents' own VMs`,
    `sessions     ${sessionsAtStart} connected after ${(connectMs / 1000).toFixed(1)}s (${connections} TCP connections), ${sessionsAtEnd} still connected at the end`,
    `load reports ${result.loadReportsPerSec.toFixed(0)}/s sent by the agents over the run; ${result.commandsPushed} commands pushed to sessions`,
    `window       ${o.durationMs / 1000}s after ${o.warmupMs / 1000}s warm-up: ${result.cyclesPerSec.toFixed(1)} cycles/s, ${result.skippedTicks} ticks skipped, ` +
      `errors: ${result.errors.length === 0 ? '0' : result.errors.map((e) => `${e.count} ${e.what}`).join(', ')}`,
    '',
    `coordinator RSS     ${mb(rssAtStart)} at start, ${mb(rssConnected)} with every session, peak ${mb(coord.rssPeakBytes)}, ${mb(coord.rssEndBytes)} at the end`,
    `coordinator CPU     ${coordinatorCpuPercent.toFixed(1)}% of one core over the window (machine ${machineBusyPercent.toFixed(0)}% busy of ${result.machine.cores} cores)`,
    `acquire             p50 ${ms(acquire.p50)} ms, p90 ${ms(acquire.p90)} ms, p99 ${ms(acquire.p99)} ms, max ${ms(acquire.max)} ms (${acquire.count} samples)`,
    `renew / release     p50 ${ms(renew.p50)} / ${ms(release.p50)} ms, p99 ${ms(renew.p99)} / ${ms(release.p99)} ms`,
    '',
    'targets (informational, not a pass/fail):',
    `  coordinator RSS peak < 300 MB: ${mb(coord.rssPeakBytes)} -> ${met(coord.rssPeakBytes < TARGET_RSS_BYTES)}`,
    `  acquire p99 < ${TARGET_P99_MS} ms:           ${ms(acquire.p99)} ms -> ${met(acquire.p99 < TARGET_P99_MS)}`,
    ...(o.agents !== 2000 ? ["  (non-default number of agents: not the issue's 2,000)"] : []),
    ...(result.coordinatorLogErrors > 0 ? [`coordinator logged ${result.coordinatorLogErrors} ERROR line(s)`] : []),
    `JSON results: ${path.relative(process.cwd(), o.out) || o.out}`,
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

const teardown = tearDownOnExit({ cleanup, running: () => ({ pool, coordinator }), progress });

main().catch(async (e) => {
  if (teardown.interrupted()) return;
  process.stderr.write(`bench:load: ${(e as Error).message}\n`);
  const tail = coordinator?.log().trim().split('\n').slice(-20).join('\n');
  if (tail) process.stderr.write(`coordinator log (tail):\n${tail}\n`);
  await cleanup();
  process.exit(1);
});

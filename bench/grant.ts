/**
 * `npm run bench:grant`: how fast one real coordinator grants durable tokens to many real gRPC clients.
 * Starts the coordinator (durability full), forks client processes holding one channel per client, and
 * runs (a) an open loop at a fixed total rate, reporting acquire latency, and (b) a closed loop, reporting
 * the grants per second sustained; the coordinator's CPU and RSS in each; and checks every grant a client
 * received against the history in the SQLite file. Prints figures; never fails on them.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../common/client/connection';
import { type RunningCoordinator, startCoordinator, tempDir } from '../test/helpers/coordinator-process';
import type { ProbeWindow } from './coordinator-probe';
import { readProbeFile } from './probe-file';
import { summariseProfile } from './cpu-profile';
import {
  type GrantBenchOptions,
  OptionsError,
  USAGE,
  compileGrantBenchOptions,
  machineDescription,
} from './grant-options';
import type { ClientSpec, PhaseSpec } from './grant-protocol';
import { checkDurability } from './history-check';
import { type GrantBenchResult, type PhaseReport, formatReport, mergePhase } from './grant-report';
import {
  ProcessSampler,
  cpuMs,
  ensureDirFor,
  establishedToPort,
  filesystemOf,
  machineCpuMs,
  openFds,
  rssBytes,
} from './proc-stats';
import { stopCoordinator, tearDownOnExit } from './teardown';
import { WorkerPool } from './worker-pool';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Time between sending a phase to the workers and its first cycle, so that all start together. */
const PHASE_LEAD_MS = 500;
const DRAIN_MS = 10_000;

let coordinator: RunningCoordinator | undefined;
let pool: WorkerPool | undefined;
let admin: Clients | undefined;
/** The coordinator's log, kept after it is stopped for the error path. */
let coordinatorLog = (): string => '';
/** Removes the SQLite file (or the temp directory holding it), unless asked to keep it. */
let removeDatabase = (): void => {};

/** Stops everything this run started. Safe to call twice. */
async function cleanup(): Promise<void> {
  admin?.close();
  admin = undefined;
  await pool?.close().catch(() => pool?.killAll());
  if (coordinator) {
    const c = coordinator;
    coordinator = undefined;
    await stopCoordinator(c);
  }
  removeDatabase();
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function assignClients(o: GrantBenchOptions): ClientSpec[][] {
  const perWorker: ClientSpec[][] = Array.from({ length: o.workers }, () => []);
  for (let i = 0; i < o.clients; i++) {
    perWorker[i % o.workers].push({ index: i, host: `bench-h${String(i % o.hosts).padStart(2, '0')}`, vm: `vm-${i}` });
  }
  return perWorker;
}

function countWithSs(port: number): number | undefined {
  try {
    const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
    return out.split('\n').filter((l) => l.trim() !== '').length;
  } catch {
    return undefined;
  }
}

interface CpuReading {
  wallMs: number;
  driver: number;
  coordinator: number;
  clients: number;
  machine: { busy: number; iowait: number; total: number };
}

/** CPU use between two readings, in % of one core (machine-wide figures: % of all cores). */
function windowCpu(from: CpuReading, to: CpuReading) {
  const wall = to.wallMs - from.wallMs;
  const machineTotal = Math.max(1, to.machine.total - from.machine.total);
  const machineBusy = to.machine.busy - from.machine.busy;
  const ours = to.driver - from.driver + (to.coordinator - from.coordinator) + (to.clients - from.clients);
  return {
    clientProcessesCpuPercent: (100 * (to.clients - from.clients)) / wall,
    machineBusyPercent: (100 * machineBusy) / machineTotal,
    machineIowaitPercent: (100 * (to.machine.iowait - from.machine.iowait)) / machineTotal,
    // Whatever else ran on the machine meanwhile (other people's tests, builds): it competes for the same cores.
    otherProcessesCpuPercent: Math.max(0, (100 * (machineBusy - ours)) / wall),
  };
}

/** Waits for the probe to write a file (it does so on the signal, synchronously) and parses it. */
async function readProbe<T>(file: string, parse: (file: string) => T): Promise<T | undefined> {
  const read = await readProbeFile(file, parse);
  if (read === undefined) progress(`the coordinator probe wrote no ${file}`);
  return read;
}

async function runPhase(o: GrantBenchOptions, kind: 'open' | 'closed', coordinatorPid: number): Promise<PhaseReport> {
  const p = pool!;
  const durationMs = kind === 'open' ? o.openDurationMs : o.closedDurationMs;
  const startAtMs = Date.now() + PHASE_LEAD_MS;
  const measureFrom = startAtMs + o.warmupMs;
  const tag = kind === 'open' ? 'a' : 'b';
  const specs: PhaseSpec[] = p.children.map((_, w) => ({
    kind,
    tag,
    startAtMs,
    warmupMs: o.warmupMs,
    durationMs,
    ratePerSec: o.ratePerSec / o.workers,
    // Worker w ticks w/N of an interval after worker 0: together, evenly spaced cycles at the total rate.
    offsetMs: (w * 1000) / o.ratePerSec,
    drainMs: DRAIN_MS,
  }));
  progress(
    kind === 'open'
      ? `phase (a): open loop, ${o.ratePerSec} cycles/s for ${durationMs / 1000}s after ${o.warmupMs / 1000}s warm-up`
      : `phase (b): closed loop, ${o.clients} clients as fast as they can for ${durationMs / 1000}s after ${o.warmupMs / 1000}s warm-up`,
  );

  // CPU figures cover the measured window only: counters are read when it starts and when it ends.
  const sampler = new ProcessSampler(coordinatorPid);
  const workerCpu = () => p.pids.reduce((s, pid) => s + (cpuMs(pid) ?? 0), 0);
  const read = () => ({
    wallMs: performance.now(),
    driver: cpuMs(process.pid) ?? 0,
    coordinator: cpuMs(coordinatorPid) ?? 0,
    clients: workerCpu(),
    machine: machineCpuMs(),
  });
  let from: ReturnType<typeof read> | undefined;
  let to: ReturnType<typeof read> | undefined;
  let coordinatorCpuPercent = 0;
  const markStart = () => {
    process.kill(coordinatorPid, 'SIGUSR2'); // the probe starts recording
    sampler.mark();
    from = read();
  };
  const markEnd = () => {
    if (!from || to) return;
    coordinatorCpuPercent = sampler.cpuSinceMark();
    process.kill(coordinatorPid, 'SIGUSR2'); // the probe writes what it recorded
    to = read();
  };
  const markTimer = setTimeout(markStart, measureFrom - Date.now());
  const endTimer = setTimeout(markEnd, measureFrom + durationMs - Date.now());

  let answers;
  try {
    answers = await p.ask(
      specs.map((phase) => ({ type: 'run', phase })),
      'result',
      PHASE_LEAD_MS + o.warmupMs + durationMs + DRAIN_MS + 10_000,
    );
  } finally {
    clearTimeout(markTimer);
    clearTimeout(endTimer);
  }
  // The workers may answer a moment before the driver's own end-of-window timer fires.
  markEnd();
  const results = answers.map((a) => a.result);
  const merged = mergePhase(specs[0], o.ratePerSec, results);
  const report: PhaseReport = {
    ...merged,
    coordinator: sampler.stop(coordinatorCpuPercent),
    ...windowCpu(from!, to!),
    durability: o.server === 'null' ? undefined : checkDurability(coordinator!.dbPath, tag, results),
  };
  progress(
    `  ${report.grantsPerSec.toFixed(0)} grants/s, acquire p50 ${report.acquireMs.p50.toFixed(2)} ms p99 ${report.acquireMs.p99.toFixed(2)} ms, ` +
      `${report.errors.reduce((s, e) => s + e.count, 0)} errors`,
  );
  return report;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const o = compileGrantBenchOptions(argv, process.env, REPO_ROOT);
  const began = Date.now();
  const loadBefore = os.loadavg();
  const dbDir = o.dbDir ?? tempDir('headroom-bench-');
  fs.mkdirSync(dbDir, { recursive: true });
  const dbPath = path.join(dbDir, `grant-${process.pid}.db`);
  removeDatabase = () => {
    if (o.keepDb) return;
    if (o.dbDir) for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${dbPath}${suffix}`, { force: true });
    else fs.rmSync(dbDir, { recursive: true, force: true });
  };
  const probeDir = path.join(REPO_ROOT, '.bench', 'probe', new Date(began).toISOString().replace(/[:.]/g, '-'));
  fs.mkdirSync(probeDir, { recursive: true });

  try {
    const fsInfo = filesystemOf(dbDir); // now: the directory may be gone by the time the report is written
    const isNull = o.server === 'null';
    progress(
      isNull
        ? 'starting the null server (grants at once: no store, no lessor)'
        : `starting the coordinator (durability ${o.durability}, database ${dbPath})`,
    );
    coordinator = await startCoordinator({
      dbPath,
      host: 'bench-h00',
      args: ['--durability', o.durability, '--max-guest', '1000'],
      main: isNull ? path.join(__dirname, 'null-token-server.js') : undefined,
      env: {
        // The helper defaults to debug logging for tests; at thousands of calls per second that is a cost we do not want to measure.
        HEADROOM_LOG: 'warn',
        // The probe times store commits (and profiles, with --cpu-prof) in each measured window, on SIGUSR2.
        NODE_OPTIONS: `--require "${path.join(__dirname, 'coordinator-probe.js')}"`,
        HEADROOM_BENCH_PROBE_DIR: probeDir,
        HEADROOM_BENCH_CPU_PROF: o.cpuProf ? '1' : '',
      },
    });
    coordinatorLog = coordinator.log;
    const pid = coordinator.process.pid!;
    const port = Number(coordinator.address.split(':').at(-1));
    const rssAtStart = rssBytes(pid) ?? 0;
    admin = connect(coordinator.address, grpc.credentials.createInsecure());

    progress(`forking ${o.workers} client processes, connecting ${o.clients} channels`);
    pool = new WorkerPool(o.workers);
    const perWorker = assignClients(o);
    const connectStart = Date.now();
    await pool.ask(
      perWorker.map((clients) => ({ type: 'connect', address: coordinator!.address, clients })),
      'connected',
      60_000,
    );
    if (!isNull) await unary(admin.admin.ListHosts.bind(admin.admin), {}); // the admin channel connects too
    const connections = {
      expected: o.clients + (isNull ? 0 : 1),
      procNetTcp: establishedToPort(port),
      ss: countWithSs(port),
      coordinatorFds: openFds(pid),
      connectMs: Date.now() - connectStart,
    };
    const rssConnected = rssBytes(pid) ?? 0;
    progress(`${connections.procNetTcp} connections established in ${connections.connectMs} ms`);

    const phases: PhaseReport[] = [];
    for (const kind of o.phases) {
      const phase = await runPhase(o, kind, pid);
      phases.push(phase);
      if (isNull) continue;
      const n = phases.length;
      phase.probe = await readProbe(
        path.join(probeDir, `${n}.probe.json`),
        (f) => JSON.parse(fs.readFileSync(f, 'utf8')) as ProbeWindow,
      );
      if (o.cpuProf)
        phase.profile = await readProbe(path.join(probeDir, `${n}.cpuprofile`), (f) => summariseProfile(f));
    }

    const hosts = isNull
      ? []
      : (await unary(admin.admin.ListHosts.bind(admin.admin), {})).hosts.map((h) => ({
          host: h.host,
          maxGuestTokens: h.policy?.maxGuestTokens ?? 0,
          fencing: h.fencing,
        }));
    const rssEnd = rssBytes(pid) ?? 0;
    const log = coordinator.log();
    await cleanup();

    const result: GrantBenchResult = {
      startedAt: new Date(began).toISOString(),
      machine: { ...machineDescription(), loadAvgBefore: loadBefore.map((l) => Math.round(l * 100) / 100) },
      parameters: { ...o, dbDir },
      database: {
        path: dbPath,
        filesystem: fsInfo ? `${fsInfo.type} (${fsInfo.device} at ${fsInfo.mountPoint})` : 'unknown',
      },
      connections,
      coordinatorRssBytes: { afterStart: rssAtStart, withClientsConnected: rssConnected, atEnd: rssEnd },
      phases,
      hosts,
      coordinatorLogErrors: log.split('\n').filter((l) => / ERROR /.test(l) || l.includes('"level":"error"')).length,
      elapsedMs: Date.now() - began,
    };
    ensureDirFor(o.out);
    fs.writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`\n${formatReport(result)}\nJSON results: ${path.relative(process.cwd(), o.out) || o.out}\n`);
  } finally {
    await cleanup();
  }
}

const teardown = tearDownOnExit({ cleanup, running: () => ({ pool, coordinator }), progress });

main().catch(async (e) => {
  if (teardown.interrupted()) return;
  if (e instanceof OptionsError) {
    process.stderr.write(`bench:grant: ${e.message}\n\n${USAGE}\n`);
    process.exit(64);
  }
  process.stderr.write(`bench:grant: ${(e as Error).stack ?? e}\n`);
  const tail = coordinatorLog().trim().split('\n').slice(-20).join('\n');
  if (tail) process.stderr.write(`coordinator log (tail):\n${tail}\n`);
  await cleanup();
  process.exit(1);
});

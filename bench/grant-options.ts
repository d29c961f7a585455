/**
 * Options of the grant benchmark: defaults, then BENCH_* environment variables, then flags. Every
 * problem is collected before failing.
 */
import * as os from 'node:os';
import { DURATION_SYNTAX, parseDuration } from '../common/util/duration';

export interface GrantBenchOptions {
  /** Simulated clients, each with its own gRPC channel and TCP connection. Default 1000. */
  clients: number;
  /** Client processes the clients are spread over. Default 4. */
  workers: number;
  /** Hosts the clients are spread over (every client has its own VM). Default 10. */
  hosts: number;
  /** Phase (a): total acquire+release cycles started per second. Default 200. */
  ratePerSec: number;
  /** Unmeasured lead-in of each phase, in ms. Default 3000. */
  warmupMs: number;
  /** Phase (a) measured window, in ms. Default 20000. */
  openDurationMs: number;
  /** Phase (b) measured window, in ms. Default 15000. */
  closedDurationMs: number;
  /**
   * What serves the clients: the real coordinator, or `null`, a stand-in that grants at once with no store
   * and no lessor, to measure what the clients, grpc-js and the machine cost on their own. Default coordinator.
   */
  server: 'coordinator' | 'null';
  /** Coordinator durability: full (fsync each commit) or normal. Default full. */
  durability: 'full' | 'normal';
  /** Which phases to run. Default both. */
  phases: ('open' | 'closed')[];
  /** Directory for the SQLite file. Default a fresh directory under the OS temp dir. */
  dbDir?: string;
  /** Keep the SQLite file after the run. Default false. */
  keepDb: boolean;
  /** Run the coordinator with --cpu-prof; profiles go to .bench/prof/. Default false. */
  cpuProf: boolean;
  /** Where the JSON results go. Default .bench/grant.json in the repository. */
  out: string;
  quick: boolean;
}

export const USAGE = `Usage: npm run bench:grant -- [options]

Options (environment variable in brackets):
  --clients N            simulated clients, one gRPC channel each (BENCH_CLIENTS, default 1000)
  --workers N            client processes (BENCH_WORKERS, default 4)
  --hosts N              hosts the clients spread over (BENCH_HOSTS, default 10)
  --rate N               phase (a) total cycles per second (BENCH_RATE, default 200)
  --warmup DURATION      unmeasured lead-in of each phase (BENCH_WARMUP, default 3s)
  --duration DURATION    phase (a) measured window (BENCH_DURATION, default 20s)
  --closed-duration DURATION  phase (b) measured window (BENCH_CLOSED_DURATION, default 15s)
  --durability MODE      full or normal (BENCH_DURABILITY, default full)
  --server null          serve the clients with a stand-in that grants at once (no store, no lessor)
                         instead of the coordinator: the floor set by the clients, grpc-js and the machine
                         (BENCH_SERVER, default coordinator)
  --only open|closed     run one phase only
  --db-dir DIR           where the SQLite file goes (BENCH_DB_DIR, default a new temp dir)
  --keep-db              keep the SQLite file
  --cpu-prof             profile the coordinator (--cpu-prof), written to .bench/prof/
  --out FILE             JSON results (default .bench/grant.json)
  --quick                fast sanity run: 200 clients, 2 workers, 100/s, 1s warm-up, 5s phases
  -h, --help             show this help

BENCH_WORKER_EXEC_ARGV  node flags for the client processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"`;

export class OptionsError extends Error {}

/** @throws OptionsError listing every problem. */
export function compileGrantBenchOptions(argv: string[], env: NodeJS.ProcessEnv, repoRoot: string): GrantBenchOptions {
  const problems: string[] = [];
  const raw: Record<string, string | boolean> = {};
  const ENV: Record<string, string> = {
    clients: 'BENCH_CLIENTS',
    workers: 'BENCH_WORKERS',
    hosts: 'BENCH_HOSTS',
    rate: 'BENCH_RATE',
    warmup: 'BENCH_WARMUP',
    duration: 'BENCH_DURATION',
    'closed-duration': 'BENCH_CLOSED_DURATION',
    durability: 'BENCH_DURABILITY',
    'db-dir': 'BENCH_DB_DIR',
    server: 'BENCH_SERVER',
  };
  for (const [key, name] of Object.entries(ENV)) if (env[name] !== undefined && env[name] !== '') raw[key] = env[name]!;
  const VALUED = [...Object.keys(ENV), 'only', 'out'];
  const SWITCHES = ['quick', 'keep-db', 'cpu-prof'];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const key = arg.startsWith('--') ? arg.slice(2, eq > 0 ? eq : undefined) : arg;
    if (SWITCHES.includes(key)) raw[key] = true;
    else if (VALUED.includes(key)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) problems.push(`--${key} needs a value`);
      else raw[key] = value;
    } else problems.push(`unknown option ${arg}`);
  }

  const quick = raw.quick === true;
  const int = (key: string, fallback: number, min: number, max: number): number => {
    if (raw[key] === undefined) return fallback;
    const v = Number(raw[key]);
    if (!Number.isInteger(v) || v < min || v > max)
      problems.push(`--${key}: expected an integer from ${min} to ${max}, got ${raw[key]}`);
    return v;
  };
  const duration = (key: string, fallback: number): number => {
    if (raw[key] === undefined) return fallback;
    try {
      return parseDuration(String(raw[key]));
    } catch {
      problems.push(`--${key}: expected ${DURATION_SYNTAX}, got ${raw[key]}`);
      return fallback;
    }
  };

  const clients = int('clients', quick ? 200 : 1000, 1, 5000);
  const workers = int('workers', quick ? 2 : 4, 1, 64);
  const hosts = int('hosts', 10, 1, 1000);
  const durability = (raw.durability ?? 'full') as string;
  if (durability !== 'full' && durability !== 'normal')
    problems.push(`--durability: expected full or normal, got ${durability}`);
  const server = (raw.server ?? 'coordinator') as string;
  if (server !== 'coordinator' && server !== 'null')
    problems.push(`--server: expected coordinator or null, got ${server}`);
  const only = raw.only as string | undefined;
  if (only !== undefined && only !== 'open' && only !== 'closed')
    problems.push(`--only: expected open or closed, got ${only}`);
  if (workers > clients) problems.push(`--workers (${workers}) cannot exceed --clients (${clients})`);
  // Every client has its own VM, and a host admits at most 1000 GUEST tokens (policy limit).
  if (Math.ceil(clients / hosts) > 1000) problems.push(`more than 1000 clients per host: raise --hosts`);

  const options: GrantBenchOptions = {
    clients,
    workers,
    hosts,
    ratePerSec: int('rate', quick ? 100 : 200, 1, 100_000),
    warmupMs: duration('warmup', quick ? 1_000 : 3_000),
    openDurationMs: duration('duration', quick ? 5_000 : 20_000),
    closedDurationMs: duration('closed-duration', quick ? 5_000 : 15_000),
    server: server as 'coordinator' | 'null',
    durability: durability as 'full' | 'normal',
    phases: only ? [only as 'open' | 'closed'] : ['open', 'closed'],
    dbDir: raw['db-dir'] as string | undefined,
    keepDb: raw['keep-db'] === true,
    cpuProf: raw['cpu-prof'] === true,
    out: (raw.out as string | undefined) ?? `${repoRoot}/.bench/grant.json`,
    quick,
  };
  for (const [k, v] of [
    ['duration', options.openDurationMs],
    ['closed-duration', options.closedDurationMs],
  ] as const) {
    if (v < 1000) problems.push(`--${k}: at least 1s`);
  }
  if (problems.length > 0) throw new OptionsError(problems.join('\n'));
  return options;
}

export function machineDescription(): {
  cores: number;
  cpuModel: string;
  memGiB: number;
  kernel: string;
  node: string;
} {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

/**
 * Starts a real `headroom-coordinator` process on 127.0.0.1:0 with a real SQLite file, for integration
 * tests and benchmarks. The coordinator prints `listening on HOST:PORT` on stdout once it serves.
 */
import { inNamespace } from './netns';
import { WAIT_THRESHOLDS_OFF } from './wait-signals';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const DIST = path.resolve(__dirname, '..', '..');
export const COORDINATOR_MAIN = path.join(DIST, 'coordinator', 'main.js');
export const AGENT_MAIN = path.join(DIST, 'agent', 'main.js');
export const CTL_MAIN = path.join(DIST, 'ctl', 'main.js');

export interface CoordinatorOptions {
  dbPath?: string;
  host?: string;
  /** Where to listen; default 127.0.0.1:0 (a free port). A restart that agents must find again gives the old address. */
  listen?: string;
  /** Extra command-line arguments, e.g. ['--lease-ttl', '2s']. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** The script to run instead of the coordinator's main.js (a benchmark's stand-in with the same command line). */
  main?: string;
  /**
   * Run inside this network namespace (test/helpers/netns.ts), e.g. a cluster member to be cut off. It then
   * listens on the namespace's address (`listen`), off loopback, so with TLS (`--pki-dir` in `args`).
   */
  namespace?: string;
  /**
   * Run with the product's default start policy: load thresholds, and a minute between planned starts.
   * Off unless asked for, or unless `args` bring a --config of their own: the real agents of the tests
   * report this machine's load and run jobs every few seconds, and the suite must neither depend on how
   * busy the machine running it is nor wait a minute between runs. The tests of the start gate set it.
   */
  defaultStartPolicy?: boolean;
}

/**
 * coordinator.yaml policy lines that turn the wait signals off (PSI, disk await: load-signals.ts), so that
 * CPU percent and byte rates decide as a test sets them, and this machine's own pressure holds nothing back.
 */
export const WAIT_SIGNALS_OFF = Object.keys(WAIT_THRESHOLDS_OFF)
  .map((field) => `  ${field.replace(/Ms$/, '')}: 0\n`)
  .join('');

export const TEST_START_POLICY =
  'policy:\n  startBelowCpuPercent: 0\n  hostStartBelowCpuPercent: 0\n  minStartGap: 0\n' + WAIT_SIGNALS_OFF;

export interface RunningCoordinator {
  address: string;
  /** The HTTP listener's URL (/metrics, /healthz), when its configuration has `http`. */
  httpUrl?: string;
  dbPath: string;
  process: ChildProcess;
  /** Everything the process wrote to stderr so far (its log). */
  log(): string;
  /** Sends SIGKILL and waits for the process to be gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait (graceful stop). */
  stop(): Promise<void>;
}

export function tempDir(prefix = 'headroom-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startCoordinator(options: CoordinatorOptions = {}): Promise<RunningCoordinator> {
  const dbPath = options.dbPath ?? path.join(tempDir(), 'headroom.db');
  const extra = [...(options.args ?? [])];
  if (!options.defaultStartPolicy && !extra.includes('--config')) {
    const config = path.join(tempDir(), 'coordinator.yaml');
    fs.writeFileSync(config, TEST_START_POLICY);
    extra.push('--config', config);
  }
  // Plaintext on loopback must be asked for: tests that bring no certificates ask for it.
  if (!extra.includes('--pki-dir') && !extra.includes('--tls-cert')) extra.push('--plaintext');
  const args = [
    options.main ?? COORDINATOR_MAIN,
    '--listen',
    options.listen ?? '127.0.0.1:0',
    '--db',
    dbPath,
    '--host',
    options.host ?? 'host-a',
    ...extra,
  ];
  const [command, argv] = options.namespace
    ? inNamespace(options.namespace, process.execPath, args)
    : [process.execPath, args];
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HEADROOM_LOG: 'debug', ...options.env },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let stdout = '';
  const address = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      stdout += d;
      const m = /listening on (\S+)/.exec(stdout);
      if (m) {
        child.stdout!.off('data', onData);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code} before listening:\n${stderr}`)));
  });

  const waitGone = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const httpUrl = /^http on (\S+)$/m.exec(stdout)?.[1];
  return {
    address,
    ...(httpUrl ? { httpUrl } : {}),
    dbPath,
    process: child,
    log: () => stderr,
    kill: () => waitGone('SIGKILL'),
    stop: () => waitGone('SIGTERM'),
  };
}

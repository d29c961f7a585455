/**
 * Process helpers for the agent's integration tests: is a pid alive, wait for a condition, and a
 * real headroom-agent process whose log the test can read and which is always torn down.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AGENT_MAIN, DIST, tempDir } from '../../helpers/coordinator-process';

export const AGENT_SEA = path.join(DIST, 'bin', 'headroom-agent');

/** True while `pid` exists and is not a zombie (a zombie has stopped doing anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Polls `check` every 20 ms until it returns a truthy value; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface AgentProcess {
  process: ChildProcess;
  /** stderr so far (the agent's log and exec's messages). */
  stderr(): string;
  stdout(): string;
  /** Resolves with the exit code (128+n for a signal). */
  exited: Promise<number>;
  /** SIGTERM, SIGKILL after 5 s; resolves once it is gone. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts `headroom-agent ARGS` (dist/agent/main.js, or the single executable). */
export function startAgent(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; executable?: string } = {},
): AgentProcess {
  const [file, argv] = options.executable ? [options.executable, args] : [process.execPath, [AGENT_MAIN, ...args]];
  const child = spawn(file, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HEADROOM_LOG: 'debug', ...options.env },
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdout!.on('data', (d) => (stdout += d));
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) =>
      resolve(code ?? 128 + (signal ? require('node:os').constants.signals[signal] : 0)),
    ),
  );
  return {
    process: child,
    stderr: () => stderr,
    stdout: () => stdout,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** Writes an agent.yaml into a fresh temporary directory and returns its path. */
export function writeConfig(text: string): string {
  const file = path.join(tempDir('headroom-agent-'), 'agent.yaml');
  fs.writeFileSync(file, text);
  return file;
}

/** An agent.yaml with `settings` (coordinator, vm, …) whose one job is never due while a test runs: the agent only holds its session. */
export function idleAgentConfig(settings: string[]): string {
  return writeConfig(
    [
      ...settings,
      'jobs:',
      '  - name: yearly',
      '    schedule: "0 0 1 1 *"',
      '    window: 1h',
      '    expectedDuration: 1m',
      '    command: ["true"]',
    ].join('\n'),
  );
}

/**
 * A 6-field cron expression due every other second, for a job that runs until the test ends: it starts as
 * soon as the agent is up, however long a busy machine takes to start it (a moment fixed when the
 * configuration is written can pass first, and the job would wait a day), and later occurrences find it
 * still running and start nothing.
 */
export const EVERY_OTHER_SECOND = '*/2 * * * * *';

/**
 * A job command whose process tree is a shell, two grandchildren sleeping in the background, writing
 * their pids (shell first) to `pidFile` once all exist.
 */
export function treeCommand(pidFile: string, seconds = 120): string[] {
  return [
    'sh',
    '-c',
    `sleep ${seconds} & a=$!; sleep ${seconds} & b=$!; echo "$$ $a $b" > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; wait`,
  ];
}

export function readPids(pidFile: string): number[] | undefined {
  try {
    const pids = fs.readFileSync(pidFile, 'utf8').trim().split(/\s+/).map(Number);
    return pids.length === 3 && pids.every((p) => p > 0) ? pids : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An agent.yaml for a daemon with one job, due as soon as it is up, that runs the process tree of
 * treeCommand and writes its pids to a fresh pid file. `extra` is more top-level YAML.
 */
export function treeJobConfig(address: string, vm: string, extra = ''): { config: string; pidFile: string } {
  const pidFile = path.join(tempDir(), 'pids');
  const config = writeConfig(
    [
      `coordinator: ${address}`,
      `vm: ${vm}`,
      'killGrace: 1s',
      extra,
      'jobs:',
      '  - name: tree',
      `    schedule: "${EVERY_OTHER_SECOND}"`,
      '    window: 1m',
      '    expectedDuration: 10m',
      `    command: ${JSON.stringify(treeCommand(pidFile))}`,
    ].join('\n'),
  );
  return { config, pidFile };
}

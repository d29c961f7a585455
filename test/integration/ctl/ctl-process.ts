/**
 * Runs the real headroomctl (dist/ctl/main.js) as a child process for integration tests, and
 * takes tokens with a plain TokenService client the way an agent would. Every process started here is
 * tracked so that `killAll()` in afterEach leaves nothing behind.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../../common/client/connection';
import {
  CTL_MAIN,
  type CoordinatorOptions,
  type RunningCoordinator,
  startCoordinator,
} from '../../helpers/coordinator-process';
import { tokenKind } from '../../../proto/enums';
import type { AcquireUpdate__Output, Token__Output } from '../../../proto/generated/headroom/v1';

export interface CtlResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCtl {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  done: Promise<CtlResult>;
  /** Resolves once stdout or stderr matches `pattern`; rejects after `timeoutMs` or if the process exits first. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

const running = new Set<ChildProcess>();

/** Starts headroomctl with `args`; HEADROOM_LOG defaults to warn, as for a person. */
export function spawnCtl(args: string[], env: NodeJS.ProcessEnv = {}): RunningCtl {
  const child = spawn(process.execPath, [CTL_MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HEADROOM_LOG: 'warn', HEADROOM_COORDINATOR: '', ...env },
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d) => {
    stdout += d;
    listeners.forEach((l) => l());
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
    listeners.forEach((l) => l());
  });
  const done = new Promise<CtlResult>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child);
      listeners.forEach((l) => l());
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    process: child,
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor(stream, pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(stream === 'stdout' ? stdout : stderr);
          if (m) {
            cleanup();
            resolve(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(
              new Error(
                `headroomctl exited before ${stream} matched ${pattern}:\nstdout: ${stdout}\nstderr: ${stderr}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`timed out waiting for ${stream} to match ${pattern}:\nstdout: ${stdout}\nstderr: ${stderr}`),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Runs headroomctl to its end. */
export function runCtl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CtlResult> {
  return spawnCtl(args, env).done;
}

/** SIGKILLs every headroomctl still running and waits for them to be gone. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('close', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}

/** A loopback port that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A test's own client of the coordinator, like an agent's. */
export function testClients(address: string): Clients {
  return connect(address, grpc.credentials.createInsecure());
}

export interface AcquireOptions {
  kind: 'GUEST' | 'HYPERVISOR';
  host?: string;
  vm: string;
  job: string;
  expectedDurationMs?: number;
  /** The lease, unrenewed: long enough for what the test waits for while it holds the token. */
  ttlMs?: number;
}

let requests = 0;

/** Acquires a token and resolves once it is granted; rejects on DENIED or an error. */
export function acquire(clients: Clients, o: AcquireOptions): Promise<Token__Output> {
  return new Promise((resolve, reject) => {
    const call = clients.token.Acquire({
      requestId: `test-${process.pid}-${++requests}`,
      kind: tokenKind.toWire(o.kind),
      host: o.host ?? 'host-a',
      vm: o.vm,
      job: o.job,
      expectedDurationMs: o.expectedDurationMs ?? 60_000,
      ttlMs: o.ttlMs ?? 0,
    });
    call.on('data', (u: AcquireUpdate__Output) => {
      if (u.granted) resolve(u.granted);
      else if (u.denied) reject(new Error(`denied: ${u.denied.reason} ${u.denied.message}`));
    });
    call.on('error', reject);
  });
}

export function release(clients: Clients, token: Token__Output): Promise<unknown> {
  return unary(clients.token.Release.bind(clients.token), {
    tokenId: token.tokenId,
    fencing: token.fencing,
    outcome: { success: true, exitCode: 0, message: 'test done' },
  });
}

export function renew(clients: Clients, token: Token__Output): Promise<unknown> {
  return unary(clients.token.Renew.bind(clients.token), { tokenId: token.tokenId, fencing: token.fencing });
}

/** The JSON lines a command wrote with --json (host-backup's events on stderr), parsed. */
export function jsonLines(text: string): Record<string, any>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

/** A fresh coordinator and plaintext clients for each test of a describe block, and headroomctl's clean-up. */
export interface CoordinatorPerTest {
  readonly coordinator: RunningCoordinator;
  readonly clients: Clients;
}

/**
 * Starts a coordinator (`options`) and its clients before each test; after it, kills the headroomctl
 * processes it left, closes the clients and kills the coordinator.
 */
export function coordinatorPerTest(options: CoordinatorOptions): CoordinatorPerTest {
  let current: { coordinator: RunningCoordinator; clients: Clients } | undefined;
  beforeEach(async () => {
    const coordinator = await startCoordinator(options);
    current = { coordinator, clients: testClients(coordinator.address) };
  });
  afterEach(async () => {
    await killAll();
    current?.clients.close();
    await current?.coordinator.kill();
    current = undefined;
  });
  const started = () => {
    if (!current) throw new Error('the coordinator is read outside a test');
    return current;
  };
  return {
    get coordinator() {
      return started().coordinator;
    },
    get clients() {
      return started().clients;
    },
  };
}

/**
 * The driver's side of the client processes: forks them, sends commands, awaits their answers, and kills
 * them whatever happens. A worker that fails or exits fails the whole benchmark.
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import type { DriverMessage, WorkerMessage } from './grant-protocol';

const WORKER_MAIN = path.join(__dirname, 'grant-worker.js');

/** Every worker answers a command it could not carry out with `failed`, and exits on `close`. */
type Failed = { type: 'failed'; message: string };

/** `main` is the worker script (bench:grant's by default); D and W the messages to and from it. */
export class WorkerPool<D extends { type: string } = DriverMessage, W extends { type: string } = WorkerMessage> {
  readonly children: ChildProcess[];

  constructor(count: number, main: string = WORKER_MAIN) {
    this.children = Array.from({ length: count }, () =>
      fork(main, [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        // For investigating the clients themselves, e.g. BENCH_WORKER_EXEC_ARGV="--cpu-prof --cpu-prof-dir=.bench/prof".
        execArgv: process.env.BENCH_WORKER_EXEC_ARGV ? process.env.BENCH_WORKER_EXEC_ARGV.split(/\s+/) : [],
        // The driver's own NODE_OPTIONS (e.g. --cpu-prof meant for it) should not reach the clients.
        env: { ...process.env, NODE_OPTIONS: '' },
      }),
    );
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid!).filter((p) => p !== undefined);
  }

  /** Sends one message to each worker (messages[i] to worker i) and awaits an answer of type `expect` from each. */
  async ask<T extends W['type']>(messages: D[], expect: T, timeoutMs: number): Promise<Extract<W, { type: T }>[]> {
    return Promise.all(
      this.children.map(
        (child, i) =>
          new Promise<Extract<W, { type: T }>>((resolve, reject) => {
            const timer = setTimeout(
              () => done(new Error(`worker ${i} did not answer ${messages[i].type} within ${timeoutMs} ms`)),
              timeoutMs,
            );
            const onMessage = (m: W | Failed) => {
              if (m.type === expect) done(undefined, m as Extract<W, { type: T }>);
              else if (m.type === 'failed') done(new Error(`worker ${i}: ${(m as Failed).message}`));
            };
            const onExit = (code: number | null, signal: string | null) =>
              done(new Error(`worker ${i} exited (${signal ?? code}) during ${messages[i].type}`));
            const done = (err?: Error, m?: Extract<W, { type: T }>) => {
              clearTimeout(timer);
              child.off('message', onMessage);
              child.off('exit', onExit);
              if (err) reject(err);
              else resolve(m!);
            };
            child.on('message', onMessage);
            child.once('exit', onExit);
            child.send(messages[i]);
          }),
      ),
    );
  }

  /** Asks every worker to close its channels and exit; kills the ones that have not within `graceMs`. */
  async close(graceMs = 2_000): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        try {
          child.send({ type: 'close' });
        } catch {
          // IPC already closed: kill below.
        }
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Synchronous last resort, for process 'exit' handlers. */
  killAll(): void {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/**
 * A QEMU Machine Protocol client over a unix socket: the greeting and capabilities negotiation,
 * commands matched to their responses by id, asynchronous events (BLOCK_JOB_COMPLETED, JOB_STATUS_CHANGE,
 * BLOCK_JOB_ERROR …) delivered to subscribers, per-command timeouts, and errors that say which command
 * failed and what QEMU answered. It knows nothing about backups (qmp-driver.ts does).
 */
import * as net from 'node:net';
import { formatDuration } from '../../common/util/duration';

/** An event as QEMU sends it; `timestampMs` is QEMU's own clock (seconds and microseconds since the epoch). */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestampMs: number;
}

/** QEMU answered a command with an error (its `class` is GenericError, DeviceNotFound, …). */
export class QmpCommandError extends Error {
  override readonly name = 'QmpCommandError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP ${command} failed: ${description} (${errorClass})`);
  }
}

/** The socket could not be used: refused, closed under us, garbage on the wire, no answer in time. */
export class QmpConnectionError extends Error {
  override readonly name = 'QmpConnectionError';
}

export interface QmpConnectOptions {
  /** For the connection, the greeting and the capabilities negotiation together; default 10 s. */
  timeoutMs?: number;
  /** Default timeout of each command; default 60 s (a transaction may have to drain guest I/O). */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

type Listener = (event: QmpEvent) => void;

export class QmpClient {
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<Listener>();
  private buffer = '';
  private closedError?: Error;
  private greetingWaiter?: { resolve(v: Record<string, unknown>): void; reject(e: Error): void };

  /** QEMU's version as its greeting announced it, e.g. "7.2.22". */
  version = '';

  private constructor(
    private readonly socket: net.Socket,
    private readonly path: string,
    private readonly commandTimeoutMs: number,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new QmpConnectionError(`QMP socket ${path}: ${err.message}`)));
    socket.on('close', () => this.fail(new QmpConnectionError(`QMP socket ${path} closed`)));
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const socket = net.createConnection({ path });
    const client = new QmpClient(socket, path, options.commandTimeoutMs ?? 60_000);
    const greeting = new Promise<Record<string, unknown>>((resolve, reject) => {
      client.greetingWaiter = { resolve, reject };
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new QmpConnectionError(
              `QMP socket ${path}: no greeting within ${formatDuration(timeoutMs)} (a QMP socket serves one client at a time: is another connected?)`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      const hello = await Promise.race([greeting, deadline]);
      const v = (hello.version as { qemu?: { major: number; minor: number; micro: number } } | undefined)?.qemu;
      client.version = v ? `${v.major}.${v.minor}.${v.micro}` : 'unknown';
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      return client;
    } catch (err) {
      client.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command and resolves to its `return` value; rejects with QmpCommandError or QmpConnectionError. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `headroom-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late answer is dropped: the id is forgotten here.
        this.pending.delete(id);
        reject(
          new QmpConnectionError(`QMP ${command}: no answer within ${formatDuration(timeoutMs)} from ${this.path}`),
        );
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Calls `listener` for every event from now on; returns the function that stops it. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Closes the socket; pending commands are rejected. */
  close(): void {
    this.fail(new QmpConnectionError(`QMP socket ${this.path} closed by us`));
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new QmpConnectionError(`QMP socket ${this.path}: not JSON: ${line.slice(0, 200)}`));
      this.socket.destroy();
      return;
    }
    if ('QMP' in message) {
      this.greetingWaiter?.resolve(message.QMP as Record<string, unknown>);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof message.event === 'string') {
      const ts = message.timestamp as { seconds?: number; microseconds?: number } | undefined;
      const event: QmpEvent = {
        event: message.event,
        data: (message.data as Record<string, unknown>) ?? {},
        timestampMs: ts ? (ts.seconds ?? 0) * 1000 + Math.floor((ts.microseconds ?? 0) / 1000) : 0,
      };
      for (const listener of [...this.listeners]) listener(event);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (!pending || id === undefined) return; // an answer we gave up waiting for
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if ('error' in message) {
      const e = message.error as { class?: string; desc?: string };
      pending.reject(new QmpCommandError(pending.command, e.class ?? 'unknown', e.desc ?? 'no description'));
    } else {
      pending.resolve(message.return);
    }
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    this.greetingWaiter?.reject(err);
    this.greetingWaiter = undefined;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}

/**
 * The agent daemon's local control endpoint: a unix socket (mode 0600, so root only) on which local tools
 * ask the running daemon something: one JSON line in, one JSON line out, then the connection closes. Today
 * its one request is a freeze notice (`headroom-agent freeze-notice`, run by qemu-guest-agent's fsfreeze
 * hook). Owns the server side (listen, replace a stale socket, remove it at close) and the client side
 * (one request under a deadline).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { formatDuration } from '../../common/util/duration';

export const DEFAULT_CONTROL_SOCKET = '/run/headroom-agent.sock';

/** sun_path holds 108 bytes with its terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** A request line: more than this is not a request of ours. */
const MAX_REQUEST_BYTES = 4096;

/** A client that connects and says nothing holds a connection no longer than this. */
const IDLE_MS = 2_000;

export interface FreezeNoticeRequest {
  frozen: boolean;
  source: string;
  /** 0: the default bound. */
  holdMs: number;
}

export interface ControlRequest {
  freezeNotice?: FreezeNoticeRequest;
}

export interface ControlReply {
  ok: boolean;
  message: string;
}

export type ControlHandler = (request: ControlRequest) => ControlReply;

/** Thrown when the socket cannot be set up; the message names the path. */
export class ControlSocketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlSocketError';
  }
}

/** True when something answers on the socket at `file`. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on `file` with mode 0600. A socket left by a daemon that died is replaced; one another daemon
 * answers on, or a file that is not a socket, is refused (ControlSocketError).
 */
export async function listenControlSocket(file: string, handle: ControlHandler): Promise<net.Server> {
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new ControlSocketError(`cannot inspect ${file}: ${(err as Error).message}`);
  }
  if (existing) {
    if (!existing.isSocket()) throw new ControlSocketError(`${file} exists and is not a socket: not replacing it`);
    if (await answers(file)) throw new ControlSocketError(`another agent is listening on ${file}`);
    fs.rmSync(file, { force: true });
  }
  const server = net.createServer((conn) => serve(conn, handle));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new ControlSocketError(`cannot listen on ${file}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)),
    );
    // The socket is bound inside listen(): a umask that leaves only the owner's bits makes it 0600 from
    // its first instant, with no window in which another user could connect.
    const umask = process.umask(0o177);
    try {
      server.listen(file, () => resolve());
    } finally {
      process.umask(umask);
    }
  });
  fs.chmodSync(file, 0o600);
  return server;
}

/** Stops listening and removes the socket file. */
export function closeControlSocket(server: net.Server, file: string): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve())).then(() => fs.rmSync(file, { force: true }));
}

function serve(conn: net.Socket, handle: ControlHandler): void {
  let buffered = '';
  const reply = (r: ControlReply) => conn.end(`${JSON.stringify(r)}\n`);
  conn.setEncoding('utf8');
  conn.setTimeout(IDLE_MS, () => conn.destroy());
  conn.on('error', () => conn.destroy());
  conn.on('data', (chunk: string) => {
    buffered += chunk;
    const end = buffered.indexOf('\n');
    if (end < 0) {
      if (buffered.length > MAX_REQUEST_BYTES)
        reply({ ok: false, message: `request longer than ${MAX_REQUEST_BYTES} bytes` });
      return;
    }
    conn.removeAllListeners('data');
    let request: unknown;
    try {
      request = JSON.parse(buffered.slice(0, end));
    } catch {
      reply({ ok: false, message: 'request is not a JSON line' });
      return;
    }
    const problem = invalid(request);
    if (problem) reply({ ok: false, message: problem });
    else reply(handle(request as ControlRequest));
  });
}

/** Why a decoded request is not one we know, or undefined. */
function invalid(request: unknown): string | undefined {
  const r = request as ControlRequest | null;
  const n = r?.freezeNotice;
  if (typeof n !== 'object' || n === null) return 'unknown request (expected freezeNotice)';
  if (typeof n.frozen !== 'boolean') return 'freezeNotice.frozen: expected true or false';
  if (typeof n.source !== 'string') return 'freezeNotice.source: expected a string';
  if (!Number.isSafeInteger(n.holdMs) || n.holdMs < 0) return 'freezeNotice.holdMs: expected an integer >= 0';
  return undefined;
}

/**
 * Sends one request to the daemon at `file` and resolves with its reply. Rejects (with the reason) when no
 * daemon listens there or it did not answer within `timeoutMs`.
 */
export function controlRequest(file: string, request: ControlRequest, timeoutMs: number): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(file);
    let answer = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      conn.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(
      () => fail(`no answer from the agent on ${file} within ${formatDuration(timeoutMs)}`),
      timeoutMs,
    );
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${JSON.stringify(request)}\n`));
    conn.on('data', (chunk: string) => (answer += chunk));
    conn.on('error', (err: NodeJS.ErrnoException) =>
      fail(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? `no agent is listening on ${file} (${err.code})`
          : `${file}: ${err.message}`,
      ),
    );
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(answer) as ControlReply;
        if (typeof reply.ok !== 'boolean' || typeof reply.message !== 'string') throw new Error('not a reply');
        resolve(reply);
      } catch {
        reject(new Error(`the agent on ${file} gave no valid answer`));
      }
    });
  });
}

/**
 * What a headroomctl command gets to work with: where its output goes, whether it prints JSON, the time,
 * and a lazily opened connection to the coordinator with one typed helper per AdminService call (each
 * with a deadline, failures wrapped as RpcError naming the method).
 */
import type * as grpc from '@grpc/grpc-js';
import { type AdminClient, type Clients, type PkiClient, type TlsFiles, unary } from '../common/client/connection';
import type { Logger } from '../common/util/log';
import type { ConnectionContext } from '../common/client/tls-diagnosis';
import { toRpcError } from './errors';
import { withIsoTimes } from '../common/util/json-times';

/** Where a command writes. Each call is one piece of text; a newline is added by `print`. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** stdout's width in characters when it is a terminal. */
  columns?: number;
}

/** The AdminService methods that take one request and give one answer. */
export type AdminUnaryMethod =
  | 'ListHosts'
  | 'ListAgents'
  | 'ListTokens'
  | 'ListHistory'
  | 'PauseHost'
  | 'ResumeHost'
  | 'RevokeToken'
  | 'GetPolicy'
  | 'SetPolicy'
  | 'GetPlan'
  | 'ListTargets'
  | 'ListBackups'
  | 'GetBackup'
  | 'PruneBackups'
  | 'StartBackup'
  | 'CancelBackup'
  | 'ListBackupRuns'
  | 'GetCluster';

// The last overload of each generated method is `(argument, callback)`: read the types from it.
export type AdminRequest<M extends AdminUnaryMethod> = Parameters<AdminClient[M]>[0];
export type AdminResponse<M extends AdminUnaryMethod> =
  Parameters<AdminClient[M]>[1] extends grpc.requestCallback<infer R> ? R : never;

/** The PkiService methods headroomctl calls (Enroll is the agent's). */
export type PkiUnaryMethod =
  'CreateEnrollmentToken' | 'ListCertificates' | 'RevokeCertificates' | 'RotateCertificate' | 'RenewCertificate';
export type PkiRequest<M extends PkiUnaryMethod> = Parameters<PkiClient[M]>[0];
export type PkiResponse<M extends PkiUnaryMethod> =
  Parameters<PkiClient[M]>[1] extends grpc.requestCallback<infer R> ? R : never;

export interface Context {
  /** The coordinator's address as given (or defaulted), for messages. */
  readonly coordinator: string;
  /** How headroomctl connects: failures that are about TLS or identity are told apart (tls-diagnosis.ts). */
  readonly connection: ConnectionContext;
  /** The PEM files the connection presents (--tls-* or --pki-dir's admin files): what `pki renew` replaces. */
  readonly tls?: TlsFiles;
  /** `--json`: print the coordinator's messages as JSON instead of tables. */
  readonly json: boolean;
  /**
   * Characters a line may take before a table cuts its last column: the terminal's, else $COLUMNS; none
   * when stdout is a pipe or a file, whose reader (grep, a log) wants every character.
   */
  readonly width?: number;
  readonly io: Io;
  readonly log: Logger;
  /** Wall-clock Unix milliseconds: what people compare the printed times with. */
  now(): number;
  /** The connection, opened on first use. */
  clients(): Clients;
  /** Calls an AdminService method with the unary deadline. Rejects with an RpcError naming the method. */
  admin<M extends AdminUnaryMethod>(method: M, request: AdminRequest<M>): Promise<AdminResponse<M>>;
  /** Calls a PkiService method with the unary deadline. Rejects with an RpcError naming the method. */
  pki<M extends PkiUnaryMethod>(method: M, request: PkiRequest<M>): Promise<PkiResponse<M>>;
  /**
   * Runs `handler` on Ctrl-C (SIGINT), SIGTERM or SIGHUP instead of the default exit, until the returned function
   * is called. For commands that run until interrupted.
   */
  onInterrupt(handler: (signal: NodeJS.Signals) => void): () => void;
}

/** Writes `text` and a newline to stdout. */
export function print(ctx: Context, text: string): void {
  ctx.io.stdout(`${text}\n`);
}

/** Writes a message as indented JSON and a newline to stdout, each time also in ISO 8601 (json-times.ts). */
export function printJson(ctx: Context, message: unknown): void {
  ctx.io.stdout(`${JSON.stringify(withIsoTimes(message), null, 2)}\n`);
}

/** Writes a message as one line of JSON (a stream of events), its times also in ISO 8601. */
export function printJsonLine(ctx: Context, message: unknown): void {
  ctx.io.stdout(`${JSON.stringify(withIsoTimes(message))}\n`);
}

/** Writes `headroomctl: <text>` to stderr: progress and warnings, never data. */
export function note(ctx: Context, text: string): void {
  ctx.io.stderr(`headroomctl: ${text}\n`);
}

export interface ContextOptions {
  coordinator: string;
  connection: ConnectionContext;
  tls?: TlsFiles;
  json: boolean;
  width: number | undefined;
  io: Io;
  log: Logger;
  now: () => number;
  /** Opens the connection; called at most once, on first use. */
  open: () => Clients;
  onInterrupt: Context['onInterrupt'];
}

/** Calls `client[method]` with the unary deadline; failures become an RpcError naming the method. */
async function call(client: object, method: string, request: unknown): Promise<unknown> {
  const fn = (client as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>)[method].bind(client);
  try {
    return await unary(fn as Parameters<typeof unary>[0], request);
  } catch (err) {
    throw toRpcError(method, err);
  }
}

/** A Context over `options`. `close()` closes the connection if it was opened. */
export function createContext(options: ContextOptions): Context & { close(): void } {
  let clients: Clients | undefined;
  const get = () => (clients ??= options.open());
  return {
    coordinator: options.coordinator,
    connection: options.connection,
    tls: options.tls,
    json: options.json,
    width: options.width,
    io: options.io,
    log: options.log,
    now: options.now,
    clients: get,
    onInterrupt: options.onInterrupt,
    admin: (method: AdminUnaryMethod, request: unknown) => call(get().admin, method, request),
    pki: (method: PkiUnaryMethod, request: unknown) => call(get().pki, method, request),
    close() {
      clients?.close();
      clients = undefined;
    },
  } as Context & { close(): void };
}

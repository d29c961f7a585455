/**
 * The agent's configuration file (agent.yaml): what it means, its defaults, and its validation. Every
 * problem is collected before failing, and each names the file, the key path and what was expected.
 */
import * as fs from 'node:fs';
import * as YAML from 'yaml';
import { DEFAULT_KILL_GRACE_MS } from '../common/backup-run/child-process';
import { DEFAULT_ADDRESS, isLoopbackHost, parseAddress, TlsFiles } from '../common/client/connection';
import { DURATION_SYNTAX, parseDuration } from '../common/util/duration';
import { ENFORCEMENT_MODES, EnforcementMode } from '../common/backup-run/budget/enforcer';
import { MAX_SOCKET_PATH_BYTES } from './freeze/control-socket';
import { ConfigError } from './errors';
import { parseSchedule } from './jobs/scheduler';

export const DEFAULT_CONFIG_PATH = '/etc/headroom/agent.yaml';

/** Largest value of the uint32 millisecond fields on the wire (about 49 days). */
const MAX_UINT32 = 0xffffffff;

export interface JobCost {
  /** What the job typically reads/writes when unthrottled, bytes/s; 0 unknown. */
  ioBytesPerSec: number;
  /** Share of one core it typically uses, percent; 0 unknown. */
  cpuPercent: number;
}

export interface JobConfig {
  /** Unique among the agent's jobs; letters, digits, `.`, `_`, `-`. */
  name: string;
  /** Cron expression, 5 fields or 6 with seconds, in the guest's local time. */
  schedule: string;
  /** How long after each scheduled time the job may still start; also the end of its window. */
  windowMs: number;
  expectedDurationMs: number;
  /** The command as an argv array; never run through a shell. */
  command: string[];
  /** Higher runs first among waiting requests; default 0. */
  priority: number;
  cost: JobCost;
}

export interface BudgetSettings {
  /** How backups are held to their budgets: the best mechanism available (auto), or only this one; default auto. */
  enforcement: EnforcementMode;
  /** The cgroup under which each backup gets its own (v1: in every hierarchy); empty: the agent's own cgroup. */
  cgroupParent: string;
}

/** PostgreSQL flush-and-hold (agent/quiesce/postgresql-hook.ts); connection as libpq takes it. */
export interface PostgresqlQuiesce {
  /** The psql client; default `psql` from PATH. */
  psql: string;
  /** A socket directory (starts with /) or a host name; empty: libpq's default. */
  host: string;
  port?: number;
  user: string;
  database: string;
  /** A file holding the password alone, handed to psql in its environment (PGPASSWORD), never on its command line. */
  passwordFile?: string;
  /** Run psql as this OS user (peer authentication, as Debian's postgres role expects); empty: as the agent. */
  osUser: string;
  /** Where each freeze's backup_label (and tablespace_map) is kept, named by token. */
  labelDir: string;
}

/** MySQL/MariaDB flush-and-hold (agent/quiesce/mysql-hook.ts). */
export interface MysqlQuiesce {
  /** The client; default `mariadb`, else `mysql`, whichever is in PATH. */
  client: string;
  socket: string;
  host: string;
  port?: number;
  user: string;
  /** A file holding the password alone, handed to the client in its environment (MYSQL_PWD). */
  passwordFile?: string;
  /** A client option file (`[client] password=...`), read first (--defaults-extra-file). */
  defaultsFile?: string;
}

/** How the guest's applications are frozen for a hypervisor snapshot (agent/quiesce/). */
export interface QuiesceSettings {
  /** Executables run with `freeze`/`thaw`, as qemu-ga's fsfreeze-hook.d; default /etc/headroom/quiesce.d. */
  hooksDir: string;
  /** The hold when the coordinator asks for none, ms; default 10000. */
  defaultHoldMs: number;
  /** No freeze is held longer, whatever the coordinator asks, ms; default 60000. */
  maxHoldMs: number;
  /** Each hook's freeze, and its thaw, gets at most this long, ms; default 10000. */
  hookTimeoutMs: number;
  /** Mount points frozen with fsfreeze, in this order (thawed in reverse). */
  fsfreeze: string[];
  postgresql?: PostgresqlQuiesce;
  mysql?: MysqlQuiesce;
}

export const DEFAULT_QUIESCE: QuiesceSettings = {
  hooksDir: '/etc/headroom/quiesce.d',
  defaultHoldMs: 10_000,
  maxHoldMs: 60_000,
  hookTimeoutMs: 10_000,
  fsfreeze: [],
};

export interface AgentConfig {
  /** The file it was read from, for messages. */
  file: string;
  /** The coordinator's address, host:port; default 127.0.0.1:7400. */
  coordinator: string;
  tls?: TlsFiles;
  /** The VM's identity; empty: the SMBIOS system UUID, else the hostname. */
  vm: string;
  /** The host the VM runs on; empty: the coordinator's own host, as its SessionSettings say. */
  host: string;
  /** When the coordinator cannot be reached at job time: keep trying until the window closes ('skip'), or run anyway ('run'). */
  onUnreachable: 'skip' | 'run';
  /** Between SIGTERM and SIGKILL when a job is stopped, ms; default 10000. */
  killGraceMs: number;
  budget: BudgetSettings;
  quiesce: QuiesceSettings;
  jobs: JobConfig[];
  /**
   * The daemon's local control socket (control-socket.ts), e.g. for freeze notices. Unset: the default
   * path, taken if free (a warning if not); set: required, the daemon does not start without it.
   */
  controlSocket?: string;
}

const TOP_KEYS = ['coordinator', 'tls', 'vm', 'host', 'onUnreachable', 'killGraceMs', 'killGrace', 'budget', 'quiesce', 'jobs', 'controlSocket'];
const QUIESCE_KEYS = ['hooksDir', 'defaultHold', 'maxHold', 'hookTimeout', 'fsfreeze', 'postgresql', 'mysql'];
const POSTGRESQL_KEYS = ['psql', 'host', 'port', 'user', 'database', 'passwordFile', 'osUser', 'labelDir'];
const MYSQL_KEYS = ['client', 'socket', 'host', 'port', 'user', 'passwordFile', 'defaultsFile'];
const BUDGET_KEYS = ['enforcement', 'cgroupParent'];
const TLS_KEYS = ['caFile', 'certFile', 'keyFile'];
const JOB_KEYS = ['name', 'schedule', 'window', 'expectedDuration', 'command', 'priority', 'cost'];
const COST_KEYS = ['ioBytesPerSec', 'cpuPercent'];
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(v) ?? String(v);

/** Collects problems as `file: key.path: message`. */
class Problems {
  readonly list: string[] = [];
  constructor(private readonly file: string) {}
  add(path: string, message: string): void {
    this.list.push(path ? `${this.file}: ${path}: ${message}` : `${this.file}: ${message}`);
  }
  unknownKeys(obj: Obj, allowed: string[], path: string): void {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) this.add(path ? `${path}.${key}` : key, `unknown key (expected one of: ${allowed.join(', ')})`);
    }
  }
  string(obj: Obj, key: string, path: string, required: boolean): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add(path, 'missing (expected a string)');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.add(path, `expected a string, got ${show(v)}`);
      return undefined;
    }
    return v;
  }
  duration(obj: Obj, key: string, path: string, required: boolean, min = 0): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add(path, `missing (expected ${DURATION_SYNTAX})`);
      return undefined;
    }
    if (typeof v !== 'string' && typeof v !== 'number') {
      this.add(path, `expected ${DURATION_SYNTAX}, got ${show(v)}`);
      return undefined;
    }
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch {
      this.add(path, `expected ${DURATION_SYNTAX}, got ${show(v)}`);
      return undefined;
    }
    if (ms < min || ms > MAX_UINT32) {
      this.add(path, `expected a duration between ${min}ms and ${MAX_UINT32}ms, got ${show(v)}`);
      return undefined;
    }
    return ms;
  }
  number(obj: Obj, key: string, path: string, opts: { min: number; max: number; integer?: boolean }): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    const ok = typeof v === 'number' && Number.isFinite(v) && v >= opts.min && v <= opts.max && (!opts.integer || Number.isInteger(v));
    if (!ok) {
      this.add(path, `expected ${opts.integer ? 'an integer' : 'a number'} from ${opts.min} to ${opts.max}, got ${show(v)}`);
      return undefined;
    }
    return v as number;
  }
  readable(file: string | undefined, path: string): void {
    if (file === undefined) return;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      this.add(path, `cannot read ${show(file)} (${(err as NodeJS.ErrnoException).code ?? err}); expected a readable PEM file`);
    }
  }
}

function compileTls(raw: unknown, p: Problems): TlsFiles | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw)) {
    p.add('tls', `expected a mapping with ${TLS_KEYS.join(', ')}, got ${show(raw)}`);
    return undefined;
  }
  p.unknownKeys(raw, TLS_KEYS, 'tls');
  const tls: TlsFiles = {
    caFile: p.string(raw, 'caFile', 'tls.caFile', false),
    certFile: p.string(raw, 'certFile', 'tls.certFile', false),
    keyFile: p.string(raw, 'keyFile', 'tls.keyFile', false),
  };
  if (!tls.caFile && !tls.certFile && !tls.keyFile) p.add('tls', 'expected at least caFile (server-authenticated TLS), or caFile, certFile and keyFile (mutual TLS)');
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) p.add('tls', 'certFile and keyFile go together (mutual TLS): give both or neither');
  p.readable(tls.caFile, 'tls.caFile');
  p.readable(tls.certFile, 'tls.certFile');
  p.readable(tls.keyFile, 'tls.keyFile');
  return tls;
}

function compileBudget(raw: unknown, p: Problems): BudgetSettings {
  const settings: BudgetSettings = { enforcement: 'auto', cgroupParent: '' };
  if (raw === undefined || raw === null) return settings;
  if (!isObj(raw)) {
    p.add('budget', `expected a mapping with ${BUDGET_KEYS.join(', ')}, got ${show(raw)}`);
    return settings;
  }
  p.unknownKeys(raw, BUDGET_KEYS, 'budget');
  const enforcement = p.string(raw, 'enforcement', 'budget.enforcement', false);
  if (enforcement !== undefined) {
    if ((ENFORCEMENT_MODES as readonly string[]).includes(enforcement)) settings.enforcement = enforcement as EnforcementMode;
    else p.add('budget.enforcement', `expected one of ${ENFORCEMENT_MODES.map((m) => `"${m}"`).join(', ')}, got ${show(enforcement)}`);
  }
  const parent = p.string(raw, 'cgroupParent', 'budget.cgroupParent', false);
  if (parent !== undefined) {
    if (parent.startsWith('/') && !parent.split('/').includes('..')) settings.cgroupParent = parent;
    else p.add('budget.cgroupParent', `expected an absolute cgroup path such as "/headroom.slice" (no ".."), got ${show(parent)}`);
  }
  return settings;
}

/** An absolute path, or undefined (with a problem) when the key holds anything else. */
function absolutePath(obj: Obj, key: string, path: string, p: Problems): string | undefined {
  const v = p.string(obj, key, path, false);
  if (v === undefined) return undefined;
  if (!v.startsWith('/')) {
    p.add(path, `expected an absolute path, got ${show(v)}`);
    return undefined;
  }
  return v;
}

/** A mapping under `path`, or undefined (with a problem when it is something else); unknown keys reported. */
function section(raw: unknown, path: string, keys: string[], p: Problems): Obj | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw)) {
    p.add(path, `expected a mapping with ${keys.join(', ')}, got ${show(raw)}`);
    return undefined;
  }
  p.unknownKeys(raw, keys, path);
  return raw;
}

const port = (obj: Obj, path: string, p: Problems) => p.number(obj, 'port', path, { min: 1, max: 65_535, integer: true });

function compilePostgresql(raw: unknown, p: Problems): PostgresqlQuiesce | undefined {
  const s = section(raw, 'quiesce.postgresql', POSTGRESQL_KEYS, p);
  if (!s) return undefined;
  const at = (key: string) => `quiesce.postgresql.${key}`;
  return {
    psql: p.string(s, 'psql', at('psql'), false) || 'psql',
    host: p.string(s, 'host', at('host'), false) ?? '',
    port: port(s, at('port'), p),
    user: p.string(s, 'user', at('user'), false) || 'postgres',
    database: p.string(s, 'database', at('database'), false) || 'postgres',
    passwordFile: absolutePath(s, 'passwordFile', at('passwordFile'), p),
    osUser: p.string(s, 'osUser', at('osUser'), false) ?? '',
    labelDir: absolutePath(s, 'labelDir', at('labelDir'), p) ?? '/var/lib/headroom/backup-labels',
  };
}

function compileMysql(raw: unknown, p: Problems): MysqlQuiesce | undefined {
  const s = section(raw, 'quiesce.mysql', MYSQL_KEYS, p);
  if (!s) return undefined;
  const at = (key: string) => `quiesce.mysql.${key}`;
  return {
    client: p.string(s, 'client', at('client'), false) ?? '',
    socket: absolutePath(s, 'socket', at('socket'), p) ?? '',
    host: p.string(s, 'host', at('host'), false) ?? '',
    port: port(s, at('port'), p),
    user: p.string(s, 'user', at('user'), false) ?? '',
    passwordFile: absolutePath(s, 'passwordFile', at('passwordFile'), p),
    defaultsFile: absolutePath(s, 'defaultsFile', at('defaultsFile'), p),
  };
}

function compileQuiesce(raw: unknown, p: Problems): QuiesceSettings {
  const s = section(raw, 'quiesce', QUIESCE_KEYS, p);
  if (!s) return { ...DEFAULT_QUIESCE };
  const settings: QuiesceSettings = {
    hooksDir: absolutePath(s, 'hooksDir', 'quiesce.hooksDir', p) ?? DEFAULT_QUIESCE.hooksDir,
    defaultHoldMs: p.duration(s, 'defaultHold', 'quiesce.defaultHold', false, 100) ?? DEFAULT_QUIESCE.defaultHoldMs,
    maxHoldMs: p.duration(s, 'maxHold', 'quiesce.maxHold', false, 100) ?? DEFAULT_QUIESCE.maxHoldMs,
    hookTimeoutMs: p.duration(s, 'hookTimeout', 'quiesce.hookTimeout', false, 100) ?? DEFAULT_QUIESCE.hookTimeoutMs,
    fsfreeze: [],
    postgresql: compilePostgresql(s.postgresql, p),
    mysql: compileMysql(s.mysql, p),
  };
  if (s.defaultHold !== undefined && settings.defaultHoldMs > settings.maxHoldMs) {
    p.add('quiesce.defaultHold', `expected at most maxHold (${settings.maxHoldMs} ms), got ${show(s.defaultHold)}`);
  }
  if (s.fsfreeze !== undefined && s.fsfreeze !== null) {
    if (!Array.isArray(s.fsfreeze)) p.add('quiesce.fsfreeze', `expected a list of mount points, got ${show(s.fsfreeze)}`);
    else {
      s.fsfreeze.forEach((mount, i) => {
        const at = `quiesce.fsfreeze[${i}]`;
        if (typeof mount !== 'string' || !mount.startsWith('/')) p.add(at, `expected the absolute path of a mount point, got ${show(mount)}`);
        // The agent logs to stderr, a pipe that Node writes synchronously: with / frozen, journald (or
        // whatever reads it) stalls, the write blocks the event loop and with it the auto-thaw.
        else if (mount.replace(/\/+$/, '') === '') p.add(at, 'the root filesystem cannot be frozen by the agent (its own log writes would hang it): leave it to the hypervisor snapshot');
        else if (settings.fsfreeze.includes(mount)) p.add(at, `duplicate mount point ${show(mount)}`);
        else settings.fsfreeze.push(mount);
      });
    }
  }
  return settings;
}

function compileJob(raw: unknown, path: string, p: Problems): JobConfig | undefined {
  if (!isObj(raw)) {
    p.add(path, `expected a mapping with ${JOB_KEYS.join(', ')}, got ${show(raw)}`);
    return undefined;
  }
  const before = p.list.length;
  p.unknownKeys(raw, JOB_KEYS, path);
  const name = p.string(raw, 'name', `${path}.name`, true);
  if (name !== undefined && !JOB_NAME.test(name)) {
    p.add(`${path}.name`, `expected letters, digits, ".", "_" or "-" (at most 128, starting with a letter or digit), got ${show(name)}`);
  }
  const schedule = p.string(raw, 'schedule', `${path}.schedule`, true);
  if (schedule !== undefined) {
    try {
      parseSchedule(schedule);
    } catch (err) {
      p.add(`${path}.schedule`, `invalid cron expression ${show(schedule)}: ${(err as Error).message} (expected 5 fields, or 6 with seconds first)`);
    }
  }
  const windowMs = p.duration(raw, 'window', `${path}.window`, true, 1_000);
  const expectedDurationMs = p.duration(raw, 'expectedDuration', `${path}.expectedDuration`, true, 1_000);
  const command = raw.command;
  if (command === undefined || command === null) p.add(`${path}.command`, 'missing (expected the command as a list of strings, e.g. [restic, backup, /data])');
  else if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string') || command[0] === '') {
    const hint = typeof command === 'string' ? ' (a single string is not split by a shell: write it as a list)' : '';
    p.add(`${path}.command`, `expected a non-empty list of strings${hint}, got ${show(command)}`);
  }
  const priority = p.number(raw, 'priority', `${path}.priority`, { min: -(2 ** 31), max: 2 ** 31 - 1, integer: true }) ?? 0;
  const cost: JobCost = { ioBytesPerSec: 0, cpuPercent: 0 };
  if (raw.cost !== undefined && raw.cost !== null) {
    if (!isObj(raw.cost)) p.add(`${path}.cost`, `expected a mapping with ${COST_KEYS.join(', ')}, got ${show(raw.cost)}`);
    else {
      p.unknownKeys(raw.cost, COST_KEYS, `${path}.cost`);
      cost.ioBytesPerSec = p.number(raw.cost, 'ioBytesPerSec', `${path}.cost.ioBytesPerSec`, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }) ?? 0;
      cost.cpuPercent = p.number(raw.cost, 'cpuPercent', `${path}.cost.cpuPercent`, { min: 0, max: MAX_UINT32, integer: true }) ?? 0;
    }
  }
  if (p.list.length > before) return undefined;
  return { name: name!, schedule: schedule!, windowMs: windowMs!, expectedDurationMs: expectedDurationMs!, command: command as string[], priority, cost };
}

/**
 * Validates a parsed agent.yaml and applies defaults. Throws a ConfigError listing every problem, each as
 * `file: key.path: what was expected`.
 */
export function compileAgentConfig(raw: unknown, file: string): AgentConfig {
  const p = new Problems(file);
  if (raw === undefined || raw === null) raw = {};
  if (!isObj(raw)) throw new ConfigError(file, [`${file}: expected a mapping of settings, got ${show(raw)}`]);
  p.unknownKeys(raw, TOP_KEYS, '');

  const coordinator = p.string(raw, 'coordinator', 'coordinator', false) ?? DEFAULT_ADDRESS;
  let coordinatorHost: string | undefined;
  try {
    coordinatorHost = parseAddress(coordinator).host;
  } catch (err) {
    p.add('coordinator', `${(err as Error).message}`);
  }
  const tls = compileTls(raw.tls, p);
  if (coordinatorHost !== undefined && !isLoopbackHost(coordinatorHost) && !tls?.caFile && !tls?.certFile) {
    p.add('coordinator', `plaintext to ${show(coordinator)} is refused (allowed on loopback only): expected tls.caFile (and certFile/keyFile for mutual TLS)`);
  }
  const vm = p.string(raw, 'vm', 'vm', false) ?? '';
  const host = p.string(raw, 'host', 'host', false) ?? '';

  let onUnreachable: 'skip' | 'run' = 'skip';
  if (raw.onUnreachable !== undefined && raw.onUnreachable !== null) {
    if (raw.onUnreachable === 'skip' || raw.onUnreachable === 'run') onUnreachable = raw.onUnreachable;
    else p.add('onUnreachable', `expected "skip" or "run", got ${show(raw.onUnreachable)}`);
  }

  let killGraceMs = DEFAULT_KILL_GRACE_MS;
  if (raw.killGraceMs !== undefined && raw.killGrace !== undefined) p.add('killGrace', 'give killGrace or killGraceMs, not both');
  else if (raw.killGraceMs !== undefined) killGraceMs = p.number(raw, 'killGraceMs', 'killGraceMs', { min: 0, max: MAX_UINT32, integer: true }) ?? killGraceMs;
  else if (raw.killGrace !== undefined) killGraceMs = p.duration(raw, 'killGrace', 'killGrace', false) ?? killGraceMs;

  const budget = compileBudget(raw.budget, p);
  const quiesce = compileQuiesce(raw.quiesce, p);

  const controlSocket = p.string(raw, 'controlSocket', 'controlSocket', false);
  if (controlSocket !== undefined && (!controlSocket.startsWith('/') || Buffer.byteLength(controlSocket) > MAX_SOCKET_PATH_BYTES)) {
    p.add('controlSocket', `expected an absolute path of at most ${MAX_SOCKET_PATH_BYTES} bytes (a unix socket's limit), got ${show(controlSocket)}`);
  }

  const jobs: JobConfig[] = [];
  if (raw.jobs !== undefined && raw.jobs !== null) {
    if (!Array.isArray(raw.jobs)) p.add('jobs', `expected a list of jobs, got ${show(raw.jobs)}`);
    else {
      const seen = new Map<string, number>();
      raw.jobs.forEach((j, i) => {
        const job = compileJob(j, `jobs[${i}]`, p);
        const name = isObj(j) && typeof j.name === 'string' ? j.name : undefined;
        if (name !== undefined) {
          if (seen.has(name)) p.add(`jobs[${i}].name`, `duplicate job name ${show(name)} (also jobs[${seen.get(name)}])`);
          else seen.set(name, i);
        }
        if (job) jobs.push(job);
      });
    }
  }
  if (p.list.length > 0) throw new ConfigError(file, p.list);
  return { file, coordinator, tls, vm, host, onUnreachable, killGraceMs, budget, quiesce, jobs, ...(controlSocket !== undefined && { controlSocket }) };
}

/** Parses YAML text; throws a ConfigError naming the file, line and column of every syntax error. */
export function parseAgentConfigText(text: string, file: string): AgentConfig {
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const before = text.slice(0, e.pos[0]).split('\n');
        return `${file}:${before.length}:${before[before.length - 1].length + 1}: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  return compileAgentConfig(doc.toJS(), file);
}

/** Reads and validates agent.yaml. Throws a ConfigError (unreadable file, YAML syntax, or every invalid setting). */
export function loadAgentConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`${file}: cannot read the configuration (${(err as NodeJS.ErrnoException).code ?? err})`]);
  }
  return parseAgentConfigText(text, file);
}

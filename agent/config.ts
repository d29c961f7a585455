/**
 * The agent's configuration file (agent.yaml): what it means, its defaults, and its schema (published as
 * docs/schemas/agent.schema.json). Every problem is collected before failing, and each names the file,
 * the key path and what was expected.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { DEFAULT_KILL_GRACE_MS } from '../common/backup-run/child-process';
import { DEFAULT_ADDRESS, isLoopbackHost, parseCoordinators, TlsFiles, usesTls } from '../common/client/connection';
import type { ConnectionContext, TlsSettingNames } from '../common/client/tls-diagnosis';
import { formatDuration } from '../common/util/duration';
import { ENFORCEMENT_MODES, EnforcementMode } from '../common/backup-run/budget/enforcer';
import {
  MAX_UINT32,
  absolutePath,
  accepted,
  across,
  argv,
  choice,
  duration,
  expected,
  integer,
  mapping,
  parseConfigText,
  readConfigFile,
  show,
  text,
  validateConfig,
} from '../common/util/config-schema';
import { MAX_SOCKET_PATH_BYTES } from './freeze/control-socket';
import { parseSchedule } from './jobs/scheduler';
import { isValidName } from '../common/domain/names';

export const DEFAULT_CONFIG_PATH = '/etc/headroom/agent.yaml';

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
  /** The shared target (coordinator.yaml's targets) it writes to; empty: none. */
  sharedTarget: string;
}

export interface BudgetSettings {
  /** How backups are held to their budgets: the best mechanism available (auto), or only this one; default auto. */
  enforcement: EnforcementMode;
  /** The cgroup under which each backup gets its own (v1: in every hierarchy); empty: the agent's own cgroup. */
  cgroupParent: string;
  /**
   * cgroup v2: memory.high of each backup's group, MiB (its page cache included); 0: no limit. Default:
   * derived from the backup's I/O budget (8 s of it, within 64..512 MiB; 512 MiB without an I/O limit).
   */
  memoryHighMiB?: number;
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
  tls?: AgentTls;
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

/** The connection's PEM files, and when the agent renews its certificate (certificate-renewer.ts). */
export interface AgentTls extends TlsFiles {
  /** Renew once this fraction of the certificate's lifetime has passed; default 2/3 (DEFAULT_RENEW_AT_FRACTION). */
  renewAtFraction?: number;
}

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A PEM file, readable now: a typo shows when the agent starts, not at its first connection. */
const pemFile = () =>
  text('the path of a PEM file').superRefine((file, ctx) => {
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `cannot read ${show(file)} (${(err as NodeJS.ErrnoException).code ?? err}); expected a readable PEM file`,
        input: file,
      });
    }
  });

/** agent.yaml's settings that fix a connection's failures, named in the messages of tls-diagnosis.ts. */
export const AGENT_TLS_SETTINGS: TlsSettingNames = {
  ca: "tls.caFile in agent.yaml (the coordinator's ca.pem)",
  clientCertificate:
    'tls.certFile and tls.keyFile in agent.yaml (headroom-agent enroll writes them and prints the lines)',
  address: 'coordinator in agent.yaml',
};

/** How the agent connects to `coordinator` with `tls`, for telling its failures apart. */
export function agentConnection(coordinator: string, tls: TlsFiles | undefined): ConnectionContext {
  return { address: coordinator, tls: usesTls(coordinator, { tls }), names: AGENT_TLS_SETTINGS };
}

const tlsSchema = mapping({
  caFile: pemFile().optional(),
  certFile: pemFile().optional(),
  keyFile: pemFile().optional(),
  renewAtFraction: z
    .number({ error: expected('a fraction of the lifetime, such as 0.67') })
    .refine((f) => f > 0 && f < 1, { error: expected('a fraction between 0 and 1 (exclusive), such as 0.67') })
    .optional(),
}).check(
  across<AgentTls>((tls, _fine, report) => {
    if (!tls.caFile && !tls.certFile && !tls.keyFile)
      report([], 'expected at least caFile (server-authenticated TLS), or caFile, certFile and keyFile (mutual TLS)');
    if (Boolean(tls.certFile) !== Boolean(tls.keyFile))
      report([], 'certFile and keyFile go together (mutual TLS): give both or neither');
  }),
);

const budgetSchema = mapping({
  enforcement: choice(ENFORCEMENT_MODES as readonly [EnforcementMode, ...EnforcementMode[]]).default('auto'),
  cgroupParent: text()
    .refine((v) => v.startsWith('/') && !v.split('/').includes('..'), {
      error: expected('an absolute cgroup path such as "/headroom.slice" (no "..")'),
    })
    .default(''),
  memoryHighMiB: integer(0, 1 << 30).optional(),
});

const port = () => integer(1, 65_535);

const postgresqlSchema = mapping({
  psql: text().default('psql'),
  host: text().default(''),
  port: port().optional(),
  user: text().default('postgres'),
  database: text().default('postgres'),
  passwordFile: absolutePath().optional(),
  osUser: text().default(''),
  labelDir: absolutePath().default('/var/lib/headroom/backup-labels'),
});

const mysqlSchema = mapping({
  client: text().default(''),
  socket: absolutePath().default(''),
  host: text().default(''),
  port: port().optional(),
  user: text().default(''),
  passwordFile: absolutePath().optional(),
  defaultsFile: absolutePath().optional(),
});

const mountPoint = text('the absolute path of a mount point')
  .refine((m) => m.startsWith('/'), { error: expected('the absolute path of a mount point') })
  // The agent logs to stderr, a pipe that Node writes synchronously: with / frozen, journald (or
  // whatever reads it) stalls, the write blocks the event loop and with it the auto-thaw.
  .refine((m) => m.replace(/\/+$/, '') !== '', {
    error:
      'the root filesystem cannot be frozen by the agent (its own log writes would hang it): leave it to the hypervisor snapshot',
  });

const holdDuration = () => duration({ min: 100 });

const quiesceSchema = mapping({
  hooksDir: absolutePath().default(DEFAULT_QUIESCE.hooksDir),
  // No default here: whether it was given decides whether it is checked against maxHold.
  defaultHold: holdDuration().optional(),
  maxHold: holdDuration().prefault(formatDuration(DEFAULT_QUIESCE.maxHoldMs)),
  hookTimeout: holdDuration().prefault(formatDuration(DEFAULT_QUIESCE.hookTimeoutMs)),
  fsfreeze: z
    .array(mountPoint, { error: expected('a list of mount points') })
    .check(
      across<string[]>((mounts, fine, report) => {
        mounts.forEach((m, i) => {
          if (fine(i) && mounts.slice(0, i).some((other, j) => fine(j) && other === m))
            report([i], `duplicate mount point ${show(m)}`);
        });
      }),
    )
    .default([]),
  postgresql: postgresqlSchema.optional(),
  mysql: mysqlSchema.optional(),
})
  .check(
    across<{ defaultHold?: number; maxHold: number }>((q, fine, report) => {
      if (q.defaultHold !== undefined && fine('defaultHold') && fine('maxHold') && q.defaultHold > q.maxHold) {
        report(
          ['defaultHold'],
          `expected at most maxHold (${formatDuration(q.maxHold)}), got ${show(formatDuration(q.defaultHold))}`,
        );
      }
    }),
  )
  .transform(({ defaultHold, maxHold, hookTimeout, ...q }): QuiesceSettings => ({
    ...q,
    defaultHoldMs: defaultHold ?? DEFAULT_QUIESCE.defaultHoldMs,
    maxHoldMs: maxHold,
    hookTimeoutMs: hookTimeout,
  }));

const jobSchema = mapping({
  name: text('a job name').regex(JOB_NAME, {
    error: expected('letters, digits, ".", "_" or "-" (at most 128, starting with a letter or digit)'),
  }),
  schedule: text('a cron expression').check(
    accepted(
      parseSchedule,
      (err, schedule) =>
        `invalid cron expression ${show(schedule)}: ${err.message} (expected 5 fields, or 6 with seconds first)`,
    ),
  ),
  window: duration({ min: 1_000 }),
  expectedDuration: duration({ min: 1_000 }),
  command: argv('[restic, backup, /data]'),
  priority: integer(-(2 ** 31), 2 ** 31 - 1).default(0),
  cost: mapping({
    ioBytesPerSec: integer(0, Number.MAX_SAFE_INTEGER).default(0),
    cpuPercent: integer(0, MAX_UINT32).default(0),
  }).prefault({}),
  // The coordinator knows the targets: one it does not know refuses the job's acquire, naming it.
  sharedTarget: text()
    .refine(isValidName, { error: expected("the name of one of coordinator.yaml's targets") })
    .optional(),
}).transform(({ window, expectedDuration, sharedTarget, ...job }): JobConfig => ({
  ...job,
  sharedTarget: sharedTarget ?? '',
  windowMs: window,
  expectedDurationMs: expectedDuration,
}));

/** agent.yaml: each key, its type, range and default. */
export const agentConfigSchema = mapping(
  {
    coordinator: text('host:port, or the members of a cluster: host:port,host:port')
      .check(accepted(parseCoordinators))
      .default(DEFAULT_ADDRESS),
    tls: tlsSchema.optional(),
    vm: text().default(''),
    host: text().default(''),
    onUnreachable: choice(['skip', 'run']).default('skip'),
    killGraceMs: integer(0, MAX_UINT32).optional(),
    killGrace: duration().optional(),
    budget: budgetSchema.prefault({}),
    quiesce: quiesceSchema.prefault({}),
    jobs: z
      .array(jobSchema, { error: expected('a list of jobs') })
      .check(
        across<unknown[]>((jobs, _fine, report) => {
          // Raw names too, so that a duplicate is named even on a job with other problems.
          const seen = new Map<string, number>();
          jobs.forEach((job, i) => {
            const name = (job as { name?: unknown })?.name;
            if (typeof name !== 'string') return;
            if (seen.has(name)) report([i, 'name'], `duplicate job name ${show(name)} (also jobs[${seen.get(name)}])`);
            else seen.set(name, i);
          });
        }),
      )
      .default([]),
    controlSocket: text()
      .refine((s) => s.startsWith('/') && Buffer.byteLength(s) <= MAX_SOCKET_PATH_BYTES, {
        error: expected(`an absolute path of at most ${MAX_SOCKET_PATH_BYTES} bytes (a unix socket's limit)`),
      })
      .optional(),
  },
  'a mapping of settings',
)
  .check(
    across<{ coordinator: string; tls?: TlsFiles; killGrace?: unknown; killGraceMs?: unknown }>((c, fine, report) => {
      if (c.killGrace !== undefined && c.killGraceMs !== undefined)
        report(['killGrace'], 'give killGrace or killGraceMs, not both');
      if (!fine('coordinator') || c.tls?.caFile || c.tls?.certFile) return;
      if (parseCoordinators(c.coordinator).some((a) => !isLoopbackHost(a.host))) {
        report(
          ['coordinator'],
          `plaintext to ${show(c.coordinator)} is refused (allowed on loopback only): expected tls.caFile (and certFile/keyFile for mutual TLS)`,
        );
      }
    }),
  )
  .transform(({ killGrace, killGraceMs, ...c }) => ({
    ...c,
    killGraceMs: killGraceMs ?? killGrace ?? DEFAULT_KILL_GRACE_MS,
  }));

/**
 * Validates a parsed agent.yaml and applies defaults. Throws a ConfigError listing every problem, each as
 * `file: key.path: what was expected`.
 */
export function compileAgentConfig(raw: unknown, file: string): AgentConfig {
  return { file, ...validateConfig(agentConfigSchema, raw, file) };
}

/** Parses YAML text; throws a ConfigError naming the file, line and column of every syntax error. */
export function parseAgentConfigText(text: string, file: string): AgentConfig {
  return compileAgentConfig(parseConfigText(text, file), file);
}

/** Reads and validates agent.yaml. Throws a ConfigError (unreadable file, YAML syntax, or every invalid setting). */
export function loadAgentConfig(file: string): AgentConfig {
  return compileAgentConfig(readConfigFile(file), file);
}

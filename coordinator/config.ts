/**
 * The coordinator's options: from a YAML file (`--config`), then command-line flags on top, validated by
 * one schema (published as docs/schemas/coordinator.schema.json). Every problem is collected before
 * failing, and each names the file (or `command line`) and the key.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { DEFAULT_ADDRESS, isLoopbackHost, parseAddress } from '../common/client/connection';
import { ConfigError } from '../common/util/config-error';
import {
  absolutePath,
  accepted,
  across,
  byteRate,
  choice,
  duration,
  expected,
  flag,
  integer,
  mapping,
  readConfigFile,
  text,
  uniqueNames,
  validateConfig,
} from '../common/util/config-schema';
import { isValidName } from '../common/domain/names';
import { BUDGET_MODES, DEFAULT_POLICY, type HostPolicy, LIMITS, checkPolicy } from './domain/policy';
import { type HypervisorJob, hypervisorJobsSchema } from './hypervisor-jobs/hypervisor-schedule';
import { type PlacementOptions, placementSchema } from './placement/placement-config';
import type { Durability } from './store/sqlite-store';
import type { HistoryRetention } from './store/store';
import type { TargetLimits } from './domain/targets';
import { pkiFiles } from './pki/state-dir';

export interface CoordinatorOptions {
  /** Address to serve on. Default 127.0.0.1:7400. */
  listen: string;
  /** SQLite database file. Default /var/lib/headroom/headroom.db. */
  database: string;
  /** This host's name, used when a caller names none. Default: the machine's hostname. */
  host: string;
  /** full: fsync every commit (survives power loss); normal: survives a process crash only. Default full. */
  durability: Durability;
  /** Server TLS from files made elsewhere. This, or `pki`, is required unless `listen` is a loopback address. */
  /**
   * `allowAnonymous`: serve TLS without client certificates on an address other hosts can reach, where
   * every caller may then make every call (refused unless set).
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string; allowAnonymous?: boolean };
  /** The coordinator's own CA (`headroomctl pki init`): mutual TLS, enrolment, roles, revocation. */
  pki?: { dir: string };
  /** Serve without TLS: allowed only on a loopback address, and only when asked for. Default false. */
  plaintext: boolean;
  /** Policy for hosts seen for the first time. */
  policy: HostPolicy;
  /** The policy fields the file or the flags set: applied over every stored host's policy at start. */
  policySet: (keyof HostPolicy)[];
  /** This host's own schedule of hypervisor-level backups, planned beside the guests' jobs. Default none. */
  hypervisorJobs: HypervisorJob[];
  /** The backup directory the admin calls manage (AdminService.ListBackups …), and the qmp driver's default target. */
  backups?: { dir: string };
  /** Where the coordinator learns which VMs run on its host (docs/placement.md). Default none. */
  placement?: PlacementOptions;
  /**
   * The HTTP listener for /metrics and /healthz (docs/observability.md). Off unless given: plaintext on a
   * loopback address, HTTPS with the coordinator's server certificate elsewhere, where callers show a client
   * certificate of its CA unless `allowAnonymous`. `maxEventStreams`: dashboard pages live at once (each holds
   * one /events stream); one more is answered 503. Default 64.
   */
  http?: { listen: string; allowAnonymous?: boolean; maxEventStreams: number };
  /** How long the history is kept: days, and rows at most. Defaults 30 days, 1,000,000 rows. */
  history: HistoryRetention;
  /**
   * Shared backup targets (a backup server's datastore, a NAS export) that jobs of every host name, each
   * with the most concurrent backups and an I/O budget (bytes/s, 0: none) held across all hosts. Default none.
   */
  targets: TargetLimits[];
  /** Cluster mode (docs/cluster.md): the members of a cluster share one coordination through etcd. */
  etcd?: EtcdOptions;
}

export interface EtcdOptions {
  /** etcd's client URLs or host:port. */
  endpoints: string[];
  /** The cluster's name: its keys live under /headroom/<cluster>/. */
  cluster: string;
  /** The election lease: how long a dead or hung leader keeps the cluster waiting, ms. Default 3 s. */
  leaseTtlMs: number;
  /**
   * Where this member serves the coordination while it leads; the other members forward to it. Any
   * address with pki (mutual TLS with member certificates); a loopback one without.
   */
  peerListen: string;
  /** TLS to etcd (`--client-cert-auth`): etcd's CA and this member's client certificate. Default none. */
  tls?: EtcdTls;
}

export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The name in etcd's certificate to check, instead of the endpoint's host (give it for IP endpoints). */
  serverName?: string;
}

export const HISTORY_DEFAULTS: HistoryRetention = { keepDays: 30, maxRows: 1_000_000 };
/** Dashboard event streams at once: every open page holds one, and each costs a socket and its buffer. */
export const DEFAULT_MAX_EVENT_STREAMS = 64;

const nonEmpty = (what: string) => text(what).min(1, { error: expected(what) });
/** A whole number, its range left to checkPolicy, which the admin API shares. */
const count = () =>
  z.int({ error: expected('a whole number >= 0') }).min(0, { error: expected('a whole number >= 0') });
const existingFile = () =>
  nonEmpty('a file name').superRefine((file, ctx) => {
    if (!fs.existsSync(file)) ctx.addIssue({ code: 'custom', message: `no such file: ${file}`, input: file });
  });

/** The policy's pressure keys, which a VM may also give for itself (vmPressure). */
const pressureShape = {
  throttleAboveIoPressurePercent: count(),
  pauseAboveIoPressurePercent: count(),
  resumeBelowIoPressurePercent: count(),
  throttleAboveCpuPressurePercent: count(),
  pauseAboveCpuPressurePercent: count(),
  resumeBelowCpuPressurePercent: count(),
  throttleAboveMemoryPressurePercent: count(),
  pauseAboveMemoryPressurePercent: count(),
  resumeBelowMemoryPressurePercent: count(),
  throttleAboveDiskAwait: duration(),
  pauseAboveDiskAwait: duration(),
  resumeBelowDiskAwait: duration(),
};

/** A policy key's HostPolicy field: a duration's key drops the unit its field carries (leaseTtl is leaseTtlMs). */
function fieldOf(key: string): keyof HostPolicy {
  return (`${key}Ms` in DEFAULT_POLICY ? `${key}Ms` : key) as keyof HostPolicy;
}

/** The policy keys of the file: unit-free names (`leaseTtl: 30s`), each a HostPolicy field. */
const policyShape = {
  maxGuestTokens: integer(1, LIMITS.maxTokensPerKind),
  maxHypervisorTokens: integer(1, LIMITS.maxTokensPerKind),
  leaseTtl: duration({ min: LIMITS.minTtlMs, max: LIMITS.maxTtlMs }),
  allowOverrun: flag(),
  reportInterval: duration({ min: LIMITS.minReportIntervalMs, max: LIMITS.maxReportIntervalMs }),
  throttleAboveCpuPercent: count(),
  pauseAboveCpuPercent: count(),
  resumeBelowCpuPercent: count(),
  throttleAboveIoBytesPerSec: count(),
  pauseAboveIoBytesPerSec: count(),
  resumeBelowIoBytesPerSec: count(),
  budgetCpuPercent: count(),
  budgetIoBytesPerSec: count(),
  throttledCpuPercent: count(),
  throttledIoBytesPerSec: count(),
  budgetDwell: duration(),
  maxPause: duration(),
  pauseWindowGuard: duration(),
  budgetMode: choice(BUDGET_MODES),
  followPlan: flag(),
  minStartGap: duration(),
  hostBudgetCpuPercent: count(),
  hostBudgetIoBytesPerSec: count(),
  startBelowCpuPercent: count(),
  startBelowIoBytesPerSec: count(),
  hostStartBelowCpuPercent: count(),
  hostStartBelowIoBytesPerSec: count(),
  hypervisorBudgetCpuPercent: count(),
  hypervisorBudgetIoBytesPerSec: count(),
  ...pressureShape,
  vmStartBelow: z.record(z.string(), mapping({ cpuPercent: count().default(0), ioBytesPerSec: count().default(0) }), {
    error: expected('a mapping of VM names to { cpuPercent, ioBytesPerSec }'),
  }),
  vmPressure: z
    .record(z.string(), mapping(z.object(pressureShape).partial().shape, 'a mapping of pressure threshold keys'), {
      error: expected('a mapping of VM names to pressure thresholds, e.g. { throttleAboveCpuPressurePercent: 60 }'),
    })
    .transform((byVm) =>
      Object.fromEntries(
        Object.entries(byVm).map(([vm, own]) => [
          vm,
          Object.fromEntries(Object.entries(own).flatMap(([key, v]) => (v === undefined ? [] : [[fieldOf(key), v]]))),
        ]),
      ),
    ),
};
type PolicyKey = keyof typeof policyShape;
const FIELD_OF = Object.fromEntries(Object.keys(policyShape).map((k) => [k, fieldOf(k)])) as Record<
  PolicyKey,
  keyof HostPolicy
>;
const KEY_OF = Object.fromEntries(Object.entries(FIELD_OF).map(([k, f]) => [f, k])) as Record<
  keyof HostPolicy,
  PolicyKey
>;

/** The default policy with the keys given that parsed; `given` says which fields they set. */
function toPolicy(raw: Record<string, unknown>, fine: (key: string) => boolean = () => true) {
  const policy: Required<HostPolicy> = { ...DEFAULT_POLICY };
  const given = new Set<keyof HostPolicy>();
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined || !(key in FIELD_OF) || !fine(key)) continue;
    (policy as Record<keyof HostPolicy, unknown>)[FIELD_OF[key as PolicyKey]] = value;
    given.add(FIELD_OF[key as PolicyKey]);
  }
  return { policy, given };
}

const policySchema = mapping(z.object(policyShape).partial().shape, 'a mapping of policy keys')
  .check(
    across<Record<string, unknown>>((raw, fine, report) => {
      const { policy, given } = toPolicy(raw, fine);
      const keyOf = (field: keyof HostPolicy) => `policy.${KEY_OF[field]}`;
      // Problems from the schema already name their key; checkPolicy sees the defaults in their place.
      for (const { field, problem } of checkPolicy(policy, given, keyOf, (f) => KEY_OF[f]))
        if (fine(KEY_OF[field])) report([KEY_OF[field]], problem);
    }),
  )
  .transform((raw) => toPolicy(raw));

const tlsSchema = mapping({
  certFile: existingFile(),
  keyFile: existingFile(),
  clientCaFile: existingFile().optional(),
  allowAnonymous: flag().optional(),
}).transform(({ allowAnonymous, ...files }): NonNullable<CoordinatorOptions['tls']> =>
  allowAnonymous ? { ...files, allowAnonymous } : files,
);

const pkiSchema = mapping({
  dir: nonEmpty('the directory headroomctl pki init made').superRefine((dir, ctx) => {
    if (!fs.existsSync(`${dir}/ca.pem`))
      ctx.addIssue({
        code: 'custom',
        message: `${dir} holds no CA (ca.pem): run headroomctl pki init --dir ${dir} first`,
        input: dir,
      });
  }),
});

const targetsSchema = z
  .array(
    mapping({
      name: text().refine(isValidName, { error: expected('a target name (letters, digits, . _ : @ -)') }),
      maxConcurrent: integer(1, LIMITS.maxTokensPerKind),
      ioBudget: byteRate().default(0),
    }).transform(({ name, maxConcurrent, ioBudget }): TargetLimits => ({
      name,
      maxConcurrent,
      ioBytesPerSec: ioBudget,
    })),
    { error: expected('a list of targets') },
  )
  .check(uniqueNames('target'));

/** coordinator.yaml: each key, its type and default; flags are merged in under the same keys. */
export const coordinatorConfigSchema = mapping({
  listen: nonEmpty('host:port').check(accepted(parseAddress)).default(DEFAULT_ADDRESS),
  database: nonEmpty('a file name').default('/var/lib/headroom/headroom.db'),
  // No default in the schema: it is the machine's hostname, not a constant an editor could show.
  host: nonEmpty('a host name').optional(),
  durability: choice(['full', 'normal']).default('full'),
  tls: tlsSchema.optional(),
  pki: pkiSchema.optional(),
  plaintext: flag().default(false),
  policy: policySchema.prefault({}),
  hypervisorJobs: hypervisorJobsSchema.default([]),
  backups: mapping({ dir: absolutePath('the absolute path of the backup directory') }).optional(),
  placement: placementSchema.optional(),
  http: mapping({
    listen: nonEmpty('host:port').check(accepted(parseAddress)),
    allowAnonymous: flag().optional(),
    maxEventStreams: integer(1, 10_000).default(DEFAULT_MAX_EVENT_STREAMS),
  }).optional(),
  history: mapping({
    keepDays: integer(1, 36_500).default(HISTORY_DEFAULTS.keepDays),
    maxRows: integer(1_000, 1_000_000_000).default(HISTORY_DEFAULTS.maxRows),
  }).prefault({}),
  etcd: mapping({
    endpoints: z
      .array(nonEmpty('host:port or http://host:port'), { error: expected('a list of etcd endpoints') })
      .min(1, { error: 'give at least one etcd endpoint' }),
    cluster: nonEmpty('a cluster name').check(
      accepted((name: string) => {
        if (!isValidName(name)) throw new Error(`"${name}" is not a valid cluster name (letters, digits, . _ : @ -)`);
      }),
    ),
    // etcd keeps a lease for at least its own minimum TTL; 1 s is the etcd3 client's floor.
    leaseTtl: duration({ min: 1_000, max: 60_000 }).default(3_000),
    peerListen: nonEmpty('host:port').check(accepted(parseAddress)),
    tls: mapping({
      caFile: existingFile(),
      certFile: existingFile(),
      keyFile: existingFile(),
      serverName: nonEmpty("a DNS name in etcd's certificate").optional(),
    }).optional(),
  }).optional(),
  targets: targetsSchema.default([]),
})
  .check(
    across<Record<string, unknown>>((o, fine, report) => {
      const host = o.host ?? os.hostname();
      if (fine('host') && (typeof host !== 'string' || !isValidName(host)))
        report(['host'], `"${String(host)}" is not a valid host name (letters, digits, . _ : @ -)`);
      if (o.tls !== undefined && o.pki !== undefined)
        report(['pki'], "give pki (the coordinator's own CA) or tls (certificates made elsewhere), not both");
      if (fine('hypervisorJobs') && o.backups === undefined) {
        (o.hypervisorJobs as HypervisorJob[]).forEach((job, i) => {
          const driver = job.driver?.driver;
          if ((driver === 'qmp' || driver === 'libvirt') && job.driver?.target === undefined)
            report(['hypervisorJobs', i, 'target'], `required with driver ${driver} unless backups.dir is set`);
        });
      }
      if (fine('http') && o.http !== undefined) checkHttp(o, report);
      if (fine('etcd') && o.etcd !== undefined) checkCluster(o, fine, report);
      if (fine('hypervisorJobs') && fine('targets')) {
        const targets = new Set((o.targets as TargetLimits[]).map((t) => t.name));
        (o.hypervisorJobs as HypervisorJob[]).forEach((job, i) => {
          if (job.target !== undefined && !targets.has(job.target))
            report(
              ['hypervisorJobs', i, 'sharedTarget'],
              `no target "${job.target}" in targets (${[...targets].join(', ') || 'none configured'})`,
            );
        });
      }
      if (!fine('listen')) return;
      const listen = o.listen as string;
      const loopback = isLoopbackHost(parseAddress(listen).host);
      const tls = o.tls as CoordinatorOptions['tls'];
      // Without client certificates nobody is identified, so on an address other hosts can reach any of
      // them could prune backups or grant itself tokens: only when asked for.
      if (fine('tls') && tls && !tls.clientCaFile && !tls.allowAnonymous && !loopback) {
        report(
          ['tls', 'clientCaFile'],
          `missing: ${listen} is not a loopback address, and without client certificates every caller could make every call, admin ones included; give tls.clientCaFile (or pki.dir instead of tls), or tls.allowAnonymous: true (--tls-allow-anonymous) to allow that knowingly`,
        );
      }
      if (!fine('plaintext')) return;
      if (o.tls !== undefined || o.pki !== undefined) {
        if (o.plaintext) report(['plaintext'], 'cannot go with tls or pki: give one way to serve');
      } else if (!loopback) {
        report(
          ['listen'],
          `${listen} is not a loopback address, so pki.dir (or tls with its clientCaFile) is required`,
        );
      } else if (!o.plaintext) {
        report(
          ['plaintext'],
          `no TLS for ${listen}: give pki.dir (or tls), or plaintext: true (--plaintext) to serve plaintext on this loopback address`,
        );
      }
    }),
  )
  .transform(({ host, durability, policy, placement, etcd, ...o }): CoordinatorOptions => ({
    ...o,
    ...(placement ? { placement } : {}),
    ...(etcd
      ? {
          etcd: {
            endpoints: etcd.endpoints,
            cluster: etcd.cluster,
            leaseTtlMs: etcd.leaseTtl,
            peerListen: etcd.peerListen,
            ...(etcd.tls ? { tls: etcd.tls } : {}),
          },
        }
      : {}),
    policy: policy.policy,
    policySet: [...policy.given],
    host: host ?? os.hostname(),
    durability: durability as Durability,
  }));

/**
 * Cluster mode: with pki, members forward calls to the leader over mutual TLS with their member
 * certificates and the callers' identities, so any address is allowed; without, calls travel in plaintext
 * without identities, so on loopback only. tls (certificates made elsewhere) has no member certificate.
 */
function checkCluster(
  o: Record<string, unknown>,
  fine: (key: string | number) => boolean,
  report: (path: (string | number)[], message: string) => void,
): void {
  const peer = (o.etcd as { peerListen: string }).peerListen;
  if (o.tls !== undefined)
    report(
      ['tls'],
      'cluster mode secures its members with pki (one CA copied to every member, docs/cluster.md), not tls: give pki.dir instead',
    );
  if (o.pki === undefined && !isLoopbackHost(parseAddress(peer).host))
    report(
      ['etcd', 'peerListen'],
      `${peer} is not a loopback address: without pki members forward in plaintext, so give pki.dir (docs/cluster.md)`,
    );
  if (fine('pki') && o.pki !== undefined) {
    const { memberCert } = pkiFiles((o.pki as { dir: string }).dir);
    if (!fs.existsSync(memberCert))
      report(
        ['pki', 'dir'],
        `${memberCert} is missing: cluster members forward with it; run headroomctl pki reissue-server --dir ${(o.pki as { dir: string }).dir} --member HOST`,
      );
  }
}

/**
 * Off loopback the HTTP listener serves HTTPS with the coordinator's server certificate, and asks for client
 * certificates of its CA: metrics name every VM and job, which is not for every host of the network to read.
 */
function checkHttp(o: Record<string, unknown>, report: (path: (string | number)[], message: string) => void) {
  const http = o.http as NonNullable<CoordinatorOptions['http']>;
  if (isLoopbackHost(parseAddress(http.listen).host)) return;
  const tls = o.tls as CoordinatorOptions['tls'];
  if (o.pki === undefined && tls === undefined) {
    report(
      ['http', 'listen'],
      `${http.listen} is not a loopback address, so HTTPS is required: give pki.dir (or tls), or listen on 127.0.0.1`,
    );
  } else if (o.pki === undefined && !tls?.clientCaFile && !http.allowAnonymous) {
    report(
      ['http', 'allowAnonymous'],
      `missing: ${http.listen} is not a loopback address and tls has no clientCaFile to check callers with; give tls.clientCaFile, or http.allowAnonymous: true to let every host that reaches it read the metrics`,
    );
  }
}

/** A policy field's key in the file: leaseTtl for leaseTtlMs. */
export function policyKey(field: keyof HostPolicy): string {
  return KEY_OF[field];
}

/** Reads a config file, to be merged with the flags and validated by compileCoordinatorOptions. @throws ConfigError */
export function loadConfigFile(file: string): Record<string, unknown> {
  const value = readConfigFile(file) ?? {};
  // Checked here too because the flags are merged into it key by key.
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(file, [{ key: '', message: `expected a mapping of keys, got ${JSON.stringify(value)}` }]);
  return value as Record<string, unknown>;
}

/**
 * Applies defaults and validates. `raw` uses the config file's keys; `source` names where it came from.
 * @throws ConfigError listing every problem.
 */
export function compileCoordinatorOptions(raw: Record<string, unknown>, source: string): CoordinatorOptions {
  return validateConfig(coordinatorConfigSchema, raw, source);
}

/**
 * The database's directory must exist: it is not created, because a mistyped path would otherwise become
 * a second, empty database, and the directory's owner and mode are the service's to set (systemd's
 * StateDirectory, or the package). The key is `database` in the file, `--db` on the command line.
 * @throws ConfigError
 */
export function checkDatabaseDirectory(options: Pick<CoordinatorOptions, 'database'>, source: string): void {
  const key = source === 'command line' ? '--db' : 'database';
  const dir = path.dirname(path.resolve(options.database));
  if (fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
  throw new ConfigError(source, [
    {
      key,
      message: `the directory ${dir} of ${options.database} does not exist: create it (mode 0700, owned by the user the coordinator runs as) or give another path`,
    },
  ]);
}

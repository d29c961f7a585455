/**
 * The coordinator's options: from a YAML file (`--config`), then command-line flags on top. Every problem
 * is collected before failing, and each names the file (or flag) and the key.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { DEFAULT_ADDRESS, isLoopbackHost, parseAddress } from '../common/client/connection';
import { DURATION_SYNTAX, parseDuration } from '../common/util/duration';
import { isValidName } from '../common/domain/names';
import { DEFAULT_POLICY, type HostPolicy, LIMITS, checkPolicy } from './domain/policy';
import { type HypervisorJob, compileHypervisorJobs } from './hypervisor-jobs/hypervisor-schedule';
import type { Durability } from './store/sqlite-store';

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
  /** This host's own schedule of hypervisor-level backups, planned beside the guests' jobs. Default none. */
  hypervisorJobs: HypervisorJob[];
  /** The backup directory the admin calls manage (AdminService.ListBackups …), and the qmp driver's default target. */
  backups?: { dir: string };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

const TOP_KEYS = ['listen', 'database', 'host', 'durability', 'tls', 'pki', 'plaintext', 'policy', 'hypervisorJobs', 'backups'];
const TLS_KEYS = ['certFile', 'keyFile', 'clientCaFile', 'allowAnonymous'];
const POLICY_KEYS: Record<string, keyof HostPolicy> = {
  maxGuestTokens: 'maxGuestTokens',
  maxHypervisorTokens: 'maxHypervisorTokens',
  leaseTtl: 'leaseTtlMs',
  allowOverrun: 'allowOverrun',
  reportInterval: 'reportIntervalMs',
  throttleAboveCpuPercent: 'throttleAboveCpuPercent',
  pauseAboveCpuPercent: 'pauseAboveCpuPercent',
  resumeBelowCpuPercent: 'resumeBelowCpuPercent',
  throttleAboveIoBytesPerSec: 'throttleAboveIoBytesPerSec',
  pauseAboveIoBytesPerSec: 'pauseAboveIoBytesPerSec',
  resumeBelowIoBytesPerSec: 'resumeBelowIoBytesPerSec',
  budgetCpuPercent: 'budgetCpuPercent',
  budgetIoBytesPerSec: 'budgetIoBytesPerSec',
  throttledCpuPercent: 'throttledCpuPercent',
  throttledIoBytesPerSec: 'throttledIoBytesPerSec',
  budgetDwell: 'budgetDwellMs',
  maxPause: 'maxPauseMs',
  pauseWindowGuard: 'pauseWindowGuardMs',
  followPlan: 'followPlan',
  minStartGap: 'minStartGapMs',
  hostBudgetCpuPercent: 'hostBudgetCpuPercent',
  hostBudgetIoBytesPerSec: 'hostBudgetIoBytesPerSec',
  startBelowCpuPercent: 'startBelowCpuPercent',
  startBelowIoBytesPerSec: 'startBelowIoBytesPerSec',
  hostStartBelowCpuPercent: 'hostStartBelowCpuPercent',
  hostStartBelowIoBytesPerSec: 'hostStartBelowIoBytesPerSec',
  hypervisorBudgetCpuPercent: 'hypervisorBudgetCpuPercent',
  hypervisorBudgetIoBytesPerSec: 'hypervisorBudgetIoBytesPerSec',
  vmStartBelow: 'vmStartBelow',
};
const POLICY_KEY_OF = Object.fromEntries(Object.entries(POLICY_KEYS).map(([k, f]) => [f, k])) as Record<keyof HostPolicy, string>;
/** Budget and start policy fields: their ranges, and how they bear on each other, are checked by checkPolicy. */
const CHECKED_DURATIONS = new Set<keyof HostPolicy>(['budgetDwellMs', 'maxPauseMs', 'pauseWindowGuardMs', 'minStartGapMs']);
const CHECKED_NUMBERS = new Set<keyof HostPolicy>([
  'throttleAboveCpuPercent', 'pauseAboveCpuPercent', 'resumeBelowCpuPercent',
  'throttleAboveIoBytesPerSec', 'pauseAboveIoBytesPerSec', 'resumeBelowIoBytesPerSec',
  'budgetCpuPercent', 'budgetIoBytesPerSec', 'throttledCpuPercent', 'throttledIoBytesPerSec',
  'hostBudgetCpuPercent', 'hostBudgetIoBytesPerSec', 'startBelowCpuPercent', 'startBelowIoBytesPerSec',
  'hostStartBelowCpuPercent', 'hostStartBelowIoBytesPerSec', 'hypervisorBudgetCpuPercent', 'hypervisorBudgetIoBytesPerSec',
]);

/** Reads and validates a config file. @throws ConfigError naming the file and each bad key. */
export function loadConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read: ${(e as Error).message}`]);
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map((e) => `${path}: ${e.message}`));
  const value = doc.toJS() ?? {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError([`${path}: expected a mapping of keys`]);
  return value as Record<string, unknown>;
}

/**
 * Applies defaults and validates. `raw` uses the config file's keys; `source` names where it came from.
 * @throws ConfigError listing every problem.
 */
export function compileCoordinatorOptions(raw: Record<string, unknown>, source: string): CoordinatorOptions {
  const problems: string[] = [];
  const bad = (key: string, msg: string) => problems.push(`${source}: ${key}: ${msg}`);
  const str = (key: string, v: unknown, fallback: string): string => {
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v === '') {
      bad(key, 'expected a non-empty string');
      return fallback;
    }
    return v;
  };
  for (const k of Object.keys(raw)) if (!TOP_KEYS.includes(k)) bad(k, `unknown key (expected one of ${TOP_KEYS.join(', ')})`);

  const listen = str('listen', raw.listen, DEFAULT_ADDRESS);
  let listenHost = '127.0.0.1';
  try {
    listenHost = parseAddress(listen).host;
  } catch (e) {
    bad('listen', (e as Error).message);
  }
  const durability = str('durability', raw.durability, 'full');
  if (durability !== 'full' && durability !== 'normal') bad('durability', `expected full or normal, got "${durability}"`);

  let tls: CoordinatorOptions['tls'];
  if (raw.tls !== undefined) {
    const t = raw.tls as Record<string, unknown>;
    if (typeof t !== 'object' || t === null) bad('tls', 'expected a mapping with certFile and keyFile');
    else {
      for (const k of Object.keys(t)) if (!TLS_KEYS.includes(k)) bad(`tls.${k}`, 'unknown key');
      const files = {
        certFile: str('tls.certFile', t.certFile, ''),
        keyFile: str('tls.keyFile', t.keyFile, ''),
        clientCaFile: t.clientCaFile === undefined ? undefined : str('tls.clientCaFile', t.clientCaFile, ''),
      };
      for (const [k, f] of Object.entries(files)) {
        if (f && !fs.existsSync(f)) bad(`tls.${k}`, `no such file: ${f}`);
      }
      tls = files;
      const anonymous = t.allowAnonymous ?? false;
      if (typeof anonymous !== 'boolean') bad('tls.allowAnonymous', 'expected true or false');
      else if (anonymous) tls.allowAnonymous = true;
      // Without client certificates nobody is identified, so on an address other hosts can reach any of
      // them could prune backups or grant itself tokens: only when asked for.
      else if (!tls.clientCaFile && !isLoopbackHost(listenHost)) {
        bad(
          'tls.clientCaFile',
          `missing: ${listen} is not a loopback address, and without client certificates every caller could make every call, admin ones included; give tls.clientCaFile (or pki.dir instead of tls), or tls.allowAnonymous: true (--tls-allow-anonymous) to allow that knowingly`,
        );
      }
    }
  }
  let pki: CoordinatorOptions['pki'];
  if (raw.pki !== undefined) {
    const p = raw.pki as Record<string, unknown>;
    if (typeof p !== 'object' || p === null) bad('pki', 'expected a mapping with dir');
    else {
      for (const k of Object.keys(p)) if (k !== 'dir') bad(`pki.${k}`, 'unknown key (expected dir)');
      pki = { dir: str('pki.dir', p.dir, '') };
      if (pki.dir === '' && p.dir === undefined) bad('pki.dir', 'missing (the directory headroomctl pki init made)');
      else if (pki.dir && !fs.existsSync(`${pki.dir}/ca.pem`)) bad('pki.dir', `${pki.dir} holds no CA (ca.pem): run headroomctl pki init --dir ${pki.dir} first`);
    }
    if (tls) bad('pki', 'give pki (the coordinator\'s own CA) or tls (certificates made elsewhere), not both');
  }
  const plaintext = raw.plaintext ?? false;
  if (typeof plaintext !== 'boolean') bad('plaintext', 'expected true or false');
  else if (tls || pki) {
    if (plaintext) bad('plaintext', 'cannot go with tls or pki: give one way to serve');
  } else if (!isLoopbackHost(listenHost)) {
    bad('listen', `${listen} is not a loopback address, so pki.dir (or tls with its clientCaFile) is required`);
  } else if (!plaintext) {
    bad('plaintext', `no TLS for ${listen}: give pki.dir (or tls), or plaintext: true (--plaintext) to serve plaintext on this loopback address`);
  }

  const policy: Required<HostPolicy> = { ...DEFAULT_POLICY };
  if (raw.policy !== undefined) {
    const p = raw.policy as Record<string, unknown>;
    if (typeof p !== 'object' || p === null) bad('policy', 'expected a mapping');
    else {
      const given = new Set<keyof HostPolicy>();
      const setChecked = (field: keyof HostPolicy, value: number) => {
        (policy as Record<keyof HostPolicy, unknown>)[field] = value;
        given.add(field);
      };
      for (const [k, v] of Object.entries(p)) {
        const field = POLICY_KEYS[k];
        if (!field) {
          bad(`policy.${k}`, `unknown key (expected one of ${Object.keys(POLICY_KEYS).join(', ')})`);
        } else if (CHECKED_DURATIONS.has(field)) {
          try {
            setChecked(field, parseDuration(v as string | number));
          } catch {
            bad(`policy.${k}`, `expected ${DURATION_SYNTAX}`);
          }
        } else if (CHECKED_NUMBERS.has(field)) {
          if (!Number.isSafeInteger(v) || (v as number) < 0) bad(`policy.${k}`, 'expected a whole number >= 0');
          else setChecked(field, v as number);
        } else if (field === 'vmStartBelow') {
          // Checked by checkPolicy like the rest; here only its shape: VM name → { cpuPercent, ioBytesPerSec }.
          if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`policy.${k}`, 'expected a mapping of VM names to { cpuPercent, ioBytesPerSec }');
          else {
            policy.vmStartBelow = Object.fromEntries(
              Object.entries(v as Record<string, { cpuPercent?: number; ioBytesPerSec?: number }>).map(([vm, t]) => [
                vm,
                { cpuPercent: t?.cpuPercent ?? 0, ioBytesPerSec: t?.ioBytesPerSec ?? 0 },
              ]),
            );
          }
        } else if (field === 'allowOverrun' || field === 'followPlan') {
          if (typeof v !== 'boolean') bad(`policy.${k}`, 'expected true or false');
          else policy[field] = v;
        } else if (field === 'leaseTtlMs' || field === 'reportIntervalMs') {
          try {
            const ms = parseDuration(v as string | number);
            const [min, max] = field === 'leaseTtlMs' ? [LIMITS.minTtlMs, LIMITS.maxTtlMs] : [LIMITS.minReportIntervalMs, LIMITS.maxReportIntervalMs];
            if (ms < min || ms > max) bad(`policy.${k}`, `must be from ${min} ms to ${max} ms`);
            else policy[field] = ms;
          } catch {
            bad(`policy.${k}`, `expected ${DURATION_SYNTAX}`);
          }
        } else if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > LIMITS.maxTokensPerKind) {
          bad(`policy.${k}`, `expected an integer from 1 to ${LIMITS.maxTokensPerKind}`);
        } else {
          policy[field] = v as number;
        }
      }
      const keyOf = (field: keyof HostPolicy) => `policy.${POLICY_KEY_OF[field]}`;
      for (const { field, problem } of checkPolicy(policy, given, keyOf)) bad(keyOf(field), problem);
    }
  }

  let backups: CoordinatorOptions['backups'];
  if (raw.backups !== undefined) {
    const b = raw.backups as Record<string, unknown>;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) bad('backups', 'expected a mapping with dir');
    else {
      for (const k of Object.keys(b)) if (k !== 'dir') bad(`backups.${k}`, 'unknown key (expected dir)');
      if (typeof b.dir !== 'string' || !path.isAbsolute(b.dir)) bad('backups.dir', 'expected the absolute path of the backup directory');
      else backups = { dir: b.dir };
    }
  }
  const hypervisorJobs = compileHypervisorJobs(raw.hypervisorJobs, bad);
  hypervisorJobs.forEach((job, i) => {
    if (job.driver?.driver === 'qmp' && job.driver.target === undefined && !backups) {
      bad(`hypervisorJobs[${i}].target`, 'required with driver qmp unless backups.dir is set');
    }
  });

  const options: CoordinatorOptions = {
    listen,
    database: str('database', raw.database, '/var/lib/headroom/headroom.db'),
    host: str('host', raw.host, os.hostname()),
    durability: durability as Durability,
    tls,
    pki,
    plaintext: plaintext === true,
    policy,
    hypervisorJobs,
    backups,
  };
  if (!isValidName(options.host)) {
    bad('host', `"${options.host}" is not a valid host name (letters, digits, . _ : @ -)`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return options;
}

/**
 * Turns wire requests into domain inputs, refusing bad input with InvalidArgumentError naming the field
 * (the wire name, as in the .proto). Nothing reaches the domain unvalidated.
 */
import { InvalidArgumentError } from '../domain/errors';
import { MAX_NAME_LENGTH, NAME_PATTERN } from '../../common/domain/names';
import type { AcquireInput, Consistency, Outcome } from '../domain/lease';
import {
  LIMITS,
  type HostPolicy,
  PRESSURE_FIELDS,
  type VmPressure,
  completePolicy,
  policyWireName,
} from '../domain/policy';
import { DEFAULT_FREEZE_HOLD_MS, MAX_FREEZE_HOLD_MS } from '../../common/domain/freeze-hold';
import { checkName } from '../../host-backup/catalog/manifest-store';
import type { Identity } from '../pki/identity';
import type { QuiesceReport } from '../service/quiesce-broker';
import type { HistoryType } from '../store/store';
import * as enums from '../../proto/enums';
import type * as v1 from '../../proto/generated/headroom/v1';
import { Enforcement } from '../../proto/generated/headroom/v1/Enforcement';

const MAX_TEXT = 1024;
const MAX_DURATION_MS = 7 * 24 * 3_600_000;
const MAX_PRIORITY = 1000;
// Far enough to reject garbage (and seconds passed as milliseconds) without limiting real schedules.
const MAX_UNIX_MS = Date.UTC(2200, 0, 1);

/** The wire (snake_case) name of a decoded field, which proto-loader spells in camelCase. */
export function wireName(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function name(field: string, value: string, required = true): string {
  if (value === '') {
    if (required) throw new InvalidArgumentError(field, 'is required');
    return value;
  }
  if (value.length > MAX_NAME_LENGTH)
    throw new InvalidArgumentError(field, `is longer than ${MAX_NAME_LENGTH} characters`);
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidArgumentError(
      field,
      'may hold only letters, digits and . _ : @ - and must start with a letter or digit',
    );
  }
  return value;
}

export function text(field: string, value: string, max = MAX_TEXT): string {
  if (value.length > max) throw new InvalidArgumentError(field, `is longer than ${max} characters`);
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value))
    throw new InvalidArgumentError(field, 'holds control characters');
  return value;
}

export function intIn(field: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** A wire enum's value as the domain names it; UNSPECIFIED (and a value this build does not know) is refused. */
export function enumName<S extends string>(field: string, e: enums.WireEnum<string, S>, value: unknown): S {
  const name = e.fromWire(value);
  if (name === undefined) {
    const wire = e.names.map((n) => e.toWire(n));
    throw new InvalidArgumentError(
      field,
      `must be ${wire.slice(0, -1).join(', ')} or ${wire.at(-1)}, got ${JSON.stringify(value)}`,
    );
  }
  return name;
}

export function host(value: string, defaultHost: string): string {
  return value === '' ? defaultHost : name('host', value);
}

export function acquireRequest(req: v1.AcquireRequest__Output, defaultHost: string): AcquireInput {
  const latestStart = intIn('latest_start_unix_ms', req.latestStartUnixMs, 0, MAX_UNIX_MS);
  const windowEnd = intIn('window_end_unix_ms', req.windowEndUnixMs, 0, MAX_UNIX_MS);
  if (latestStart > 0 && windowEnd > 0 && latestStart > windowEnd) {
    throw new InvalidArgumentError('latest_start_unix_ms', 'is after window_end_unix_ms');
  }
  if (req.ttlMs !== 0) intIn('ttl_ms', req.ttlMs, LIMITS.minTtlMs, LIMITS.maxTtlMs);
  return {
    requestId: name('request_id', req.requestId),
    kind: enumName('kind', enums.tokenKind, req.kind),
    host: host(req.host, defaultHost),
    vm: name('vm', req.vm),
    job: name('job', req.job, false),
    expectedDurationMs: intIn('expected_duration_ms', req.expectedDurationMs, 0, MAX_DURATION_MS),
    latestStart,
    windowEnd,
    priority: intIn('priority', req.priority, -MAX_PRIORITY, MAX_PRIORITY),
    ttlMs: req.ttlMs,
    // Whether it names a configured target is the lessor's to say (domain/targets.ts).
    ...(req.target !== '' ? { target: name('target', req.target) } : {}),
  };
}

export function tokenRef(req: { tokenId: string; fencing: number }): { tokenId: string; fencing: number } {
  return {
    tokenId: name('token_id', req.tokenId),
    fencing: intIn('fencing', req.fencing, 1, Number.MAX_SAFE_INTEGER),
  };
}

export function outcome(o: v1.Outcome__Output | null): Outcome {
  if (!o) return { success: false, durationMs: 0, exitCode: 0, message: 'no outcome given' };
  const achieved = consistency('outcome.consistency', o.consistency);
  return {
    success: o.success,
    // Unset (proto3 optional) when the holder does not know: recorded as unknown, never as 0.
    ...(o.bytes !== undefined ? { bytes: intIn('outcome.bytes', o.bytes, 0, Number.MAX_SAFE_INTEGER) } : {}),
    durationMs: intIn('outcome.duration_ms', o.durationMs, 0, 2 ** 32 - 1),
    exitCode: o.exitCode,
    message: text('outcome.message', o.message),
    ...(achieved ? { consistency: achieved } : {}),
  };
}

/** A Consistency on the wire; undefined for CONSISTENCY_UNSPECIFIED (the holder did not say). */
function consistency(field: string, value: unknown): Consistency | undefined {
  if (value === 'CONSISTENCY_UNSPECIFIED' || value === 0 || value === undefined) return undefined;
  return enumName(field, enums.consistency, value);
}

/** A freeze's bound and the wait for the agent's answer: longer than this is no snapshot's quiesce. */
export const MAX_QUIESCE_MS = 10 * 60_000;

export function quiesceRequest(req: v1.QuiesceRequest__Output): {
  tokenId: string;
  fencing: number;
  holdMs: number;
  timeoutMs: number;
} {
  return {
    ...tokenRef(req),
    holdMs: intIn('hold_ms', req.holdMs, 0, MAX_QUIESCE_MS),
    timeoutMs: intIn('timeout_ms', req.timeoutMs, 0, MAX_QUIESCE_MS),
  };
}

/**
 * The change a SetPolicy asks for. With `vm`, it changes only that VM's own thresholds, and nothing else
 * may be given: its start thresholds (`current`'s vmStartBelow, the VM's or else the host's values for the
 * fields not given) and its pressure thresholds (vmPressure: the fields given join the VM's override; those
 * it never gave follow the host's). reset_vm drops both.
 * @throws InvalidArgumentError naming the field.
 */
export function policyPatch(req: v1.SetPolicyRequest__Output, current: HostPolicy): Partial<HostPolicy> {
  const patch = hostPolicyPatch(req);
  if (req.vm === '') {
    if (req.resetVm) throw new InvalidArgumentError('reset_vm', 'needs vm: the VM whose own thresholds to drop');
    return patch;
  }
  const vm = name('vm', req.vm);
  const given = (Object.keys(patch) as (keyof HostPolicy)[]).filter((f) => patch[f] !== undefined);
  const pressure = Object.fromEntries(
    given.flatMap((f) => ((PRESSURE_FIELDS as readonly string[]).includes(f) ? [[f, patch[f]]] : [])),
  ) as VmPressure;
  const { startBelowCpuPercent, startBelowIoBytesPerSec } = patch;
  const other = given.find((f) => f !== 'startBelowCpuPercent' && f !== 'startBelowIoBytesPerSec' && !(f in pressure));
  if (other)
    throw new InvalidArgumentError(
      policyWireName(other),
      'cannot be set for one VM: only start_below_cpu_percent, start_below_io_bytes_per_sec and the pressure and disk await thresholds can',
    );
  const complete = completePolicy(current);
  const starts = { ...complete.vmStartBelow };
  const pressures = { ...complete.vmPressure };
  if (req.resetVm) {
    if (given.length > 0)
      throw new InvalidArgumentError('reset_vm', "drops the VM's thresholds: give no thresholds with it");
    delete starts[vm];
    delete pressures[vm];
    return { vmStartBelow: starts, vmPressure: pressures };
  }
  if (given.length === 0)
    throw new InvalidArgumentError(
      'vm',
      'give start_below_cpu_percent, start_below_io_bytes_per_sec or a pressure threshold for the VM, or reset_vm',
    );
  const change: Partial<HostPolicy> = {};
  if (startBelowCpuPercent !== undefined || startBelowIoBytesPerSec !== undefined) {
    const was = starts[vm] ?? {
      cpuPercent: complete.startBelowCpuPercent,
      ioBytesPerSec: complete.startBelowIoBytesPerSec,
    };
    starts[vm] = {
      cpuPercent: startBelowCpuPercent ?? was.cpuPercent,
      ioBytesPerSec: startBelowIoBytesPerSec ?? was.ioBytesPerSec,
    };
    change.vmStartBelow = starts;
  }
  if (Object.keys(pressure).length > 0) {
    pressures[vm] = { ...pressures[vm], ...pressure };
    change.vmPressure = pressures;
  }
  return change;
}

function hostPolicyPatch(req: v1.SetPolicyRequest__Output): Partial<HostPolicy> {
  // proto3 optional fields: a field that was not sent is absent (or undefined) in the decoded object.
  return {
    maxGuestTokens: req.maxGuestTokens ?? undefined,
    maxHypervisorTokens: req.maxHypervisorTokens ?? undefined,
    leaseTtlMs: req.leaseTtlMs ?? undefined,
    allowOverrun: req.allowOverrun ?? undefined,
    reportIntervalMs: req.reportIntervalMs ?? undefined,
    throttleAboveCpuPercent: req.throttleAboveCpuPercent ?? undefined,
    pauseAboveCpuPercent: req.pauseAboveCpuPercent ?? undefined,
    resumeBelowCpuPercent: req.resumeBelowCpuPercent ?? undefined,
    throttleAboveIoBytesPerSec: req.throttleAboveIoBytesPerSec ?? undefined,
    pauseAboveIoBytesPerSec: req.pauseAboveIoBytesPerSec ?? undefined,
    resumeBelowIoBytesPerSec: req.resumeBelowIoBytesPerSec ?? undefined,
    budgetCpuPercent: req.budgetCpuPercent ?? undefined,
    budgetIoBytesPerSec: req.budgetIoBytesPerSec ?? undefined,
    throttledCpuPercent: req.throttledCpuPercent ?? undefined,
    throttledIoBytesPerSec: req.throttledIoBytesPerSec ?? undefined,
    budgetDwellMs: req.budgetDwellMs ?? undefined,
    maxPauseMs: req.maxPauseMs ?? undefined,
    pauseWindowGuardMs: req.pauseWindowGuardMs ?? undefined,
    followPlan: req.followPlan ?? undefined,
    minStartGapMs: req.minStartGapMs ?? undefined,
    hostBudgetCpuPercent: req.hostBudgetCpuPercent ?? undefined,
    hostBudgetIoBytesPerSec: req.hostBudgetIoBytesPerSec ?? undefined,
    startBelowCpuPercent: req.startBelowCpuPercent ?? undefined,
    startBelowIoBytesPerSec: req.startBelowIoBytesPerSec ?? undefined,
    hostStartBelowCpuPercent: req.hostStartBelowCpuPercent ?? undefined,
    hostStartBelowIoBytesPerSec: req.hostStartBelowIoBytesPerSec ?? undefined,
    hypervisorBudgetCpuPercent: req.hypervisorBudgetCpuPercent ?? undefined,
    hypervisorBudgetIoBytesPerSec: req.hypervisorBudgetIoBytesPerSec ?? undefined,
    throttleAboveIoPressurePercent: req.throttleAboveIoPressurePercent ?? undefined,
    pauseAboveIoPressurePercent: req.pauseAboveIoPressurePercent ?? undefined,
    resumeBelowIoPressurePercent: req.resumeBelowIoPressurePercent ?? undefined,
    throttleAboveCpuPressurePercent: req.throttleAboveCpuPressurePercent ?? undefined,
    pauseAboveCpuPressurePercent: req.pauseAboveCpuPressurePercent ?? undefined,
    resumeBelowCpuPressurePercent: req.resumeBelowCpuPressurePercent ?? undefined,
    throttleAboveMemoryPressurePercent: req.throttleAboveMemoryPressurePercent ?? undefined,
    pauseAboveMemoryPressurePercent: req.pauseAboveMemoryPressurePercent ?? undefined,
    resumeBelowMemoryPressurePercent: req.resumeBelowMemoryPressurePercent ?? undefined,
    throttleAboveDiskAwaitMs: req.throttleAboveDiskAwaitMs ?? undefined,
    pauseAboveDiskAwaitMs: req.pauseAboveDiskAwaitMs ?? undefined,
    resumeBelowDiskAwaitMs: req.resumeBelowDiskAwaitMs ?? undefined,
    // checkPolicy names a mode it does not know.
    budgetMode: (req.budgetMode ?? undefined) as HostPolicy['budgetMode'],
  };
}

/** ListHistory's filters: the event types (each a known one, none twice) and the earliest time. */
export function historyFilter(req: v1.ListHistoryRequest__Output): { types: HistoryType[]; since: number } {
  const types = req.types.map((t) => enumName('types', enums.historyEventType, t));
  if (new Set(types).size !== types.length) throw new InvalidArgumentError('types', 'names a type twice');
  return { types, since: intIn('since_unix_ms', req.sinceUnixMs, 0, MAX_UNIX_MS) };
}

export function limit(field: string, value: number, fallback: number, max: number): number {
  return value === 0 ? fallback : intIn(field, value, 1, max);
}

// AgentService.Session's messages.

const MAX_JOBS = 256;

export function hello(msg: v1.Hello__Output, defaultHost: string) {
  if (msg.jobs.length > MAX_JOBS) throw new InvalidArgumentError('hello.jobs', `more than ${MAX_JOBS} jobs`);
  msg.jobs.forEach((j, i) => {
    name(`hello.jobs[${i}].name`, j.name);
    text(`hello.jobs[${i}].schedule`, j.schedule, 256);
    // A uint64 past 2^53 decodes inexactly; stored, it would make every later plan of the host fail.
    intIn(
      `hello.jobs[${i}].declared_cost.io_bytes_per_sec`,
      j.declaredCost?.ioBytesPerSec ?? 0,
      0,
      Number.MAX_SAFE_INTEGER,
    );
  });
  return {
    vm: name('hello.vm', msg.vm),
    host: name('hello.host', msg.host === '' ? defaultHost : msg.host),
    agentVersion: text('hello.agent_version', msg.agentVersion, 64),
    hostname: text('hello.hostname', msg.hostname, 253),
    jobs: msg.jobs,
  };
}

export function load(report: v1.LoadReport__Output): v1.LoadReport__Output {
  for (const [field, value] of Object.entries(report)) {
    if (typeof value === 'number' && (!Number.isFinite(value) || value < 0)) {
      throw new InvalidArgumentError(`load.${wireName(field)}`, `must be a finite number >= 0, got ${value}`);
    }
  }
  // PSI figures are shares of wall time.
  for (const resource of ['cpuPressure', 'ioPressure', 'memoryPressure'] as const) {
    for (const [field, value] of Object.entries(report[resource] ?? {})) {
      if (typeof value === 'number' && !(value >= 0 && value <= 100)) {
        const at = `load.${wireName(resource)}.${wireName(field)}`;
        throw new InvalidArgumentError(at, `must be a percentage from 0 to 100, got ${value}`);
      }
    }
  }
  text('load.pressure_missing', report.pressureMissing, 256);
  return report;
}

/** A FreezeNotice as the coordinator acts on it: hold_ms 0 is the default bound. */
export function freezeNotice(notice: v1.FreezeNotice__Output): { frozen: boolean; source: string; holdMs: number } {
  const source = name('freeze_notice.source', notice.source);
  const holdMs = intIn('freeze_notice.hold_ms', notice.holdMs, 0, MAX_FREEZE_HOLD_MS);
  return { frozen: notice.frozen, source, holdMs: holdMs || DEFAULT_FREEZE_HOLD_MS };
}

const ENFORCEMENTS: readonly unknown[] = Object.values(Enforcement);

export function budgetReport(report: v1.BudgetReport__Output): v1.BudgetReport {
  if (!ENFORCEMENTS.includes(report.enforcement)) {
    throw new InvalidArgumentError(
      'budget.enforcement',
      `must be one of ${ENFORCEMENTS.join(', ')}, got ${report.enforcement}`,
    );
  }
  return {
    tokenId: name('budget.token_id', report.tokenId),
    budget: { ioBytesPerSec: report.budget?.ioBytesPerSec ?? 0, cpuPercent: report.budget?.cpuPercent ?? 0 },
    paused: report.paused,
    enforcement: report.enforcement,
    detail: text('budget.detail', report.detail),
  };
}

const MAX_HOOKS = 64;
export function quiesceReport(report: v1.QuiesceReport__Output): QuiesceReport {
  const state = enumName('quiesce.state', enums.quiesceState, report.state);
  if (report.hooks.length > MAX_HOOKS) throw new InvalidArgumentError('quiesce.hooks', `more than ${MAX_HOOKS} hooks`);
  return {
    ...report,
    state,
    tokenId: name('quiesce.token_id', report.tokenId),
    message: text('quiesce.message', report.message),
    hooks: report.hooks.map((h, i) => ({
      ...h,
      name: text(`quiesce.hooks[${i}].name`, h.name, 256),
      message: text(`quiesce.hooks[${i}].message`, h.message),
    })),
  };
}

// PkiService's requests.

const ROLES = { AGENT: 'agent', HOST: 'host', ADMIN: 'admin' } as const satisfies Record<
  (typeof enums.role.names)[number],
  Identity['role']
>;

/** A role as the wire names it (ROLE_AGENT). */
export function roleToWire(role: Identity['role']): v1.Role {
  return enums.role.toWire(role.toUpperCase() as keyof typeof ROLES);
}

export function identity(field: string, id: v1.Identity__Output | null): Identity {
  if (!id) throw new InvalidArgumentError(field, 'missing');
  const role = ROLES[enumName(`${field}.role`, enums.role, id.role)];
  if (role === 'admin') return { role, name: name(`${field}.name`, id.name) };
  const host = name(`${field}.host`, id.host);
  return role === 'host' ? { role, host } : { role, host, vm: name(`${field}.vm`, id.vm) };
}

export function enrollRequest(req: v1.EnrollRequest__Output): { token: string; csrPem: string } {
  return { token: text('token', req.token, 256), csrPem: text('csr_pem', req.csrPem, 16_384) };
}

export function renewCertificateRequest(req: v1.RenewCertificateRequest__Output): { serial: string; csrPem: string } {
  if (req.serial === '') throw new InvalidArgumentError('serial', 'is required: the certificate to renew');
  return { serial: text('serial', req.serial, 64), csrPem: text('csr_pem', req.csrPem, 16_384) };
}

/** The certificates to revoke: by serial or by identity, exactly one of them. */
export function revokeCertificatesRequest(req: v1.RevokeCertificatesRequest__Output): {
  selector: { serial: string } | { identity: Identity };
  reason: string;
} {
  const reason = text('reason', req.reason, 256);
  if ((req.serial === '') === !req.identity)
    throw new InvalidArgumentError('serial', 'give a serial or an identity (one of them)');
  const selector =
    req.serial !== '' ? { serial: text('serial', req.serial, 64) } : { identity: identity('identity', req.identity) };
  return { selector, reason };
}

// AdminService's snapshot calls.

/** A name the catalog can use as a directory (and the coordinator as a VM name). */
export function catalogName(field: string, value: string): string {
  name(field, value);
  try {
    checkName(field, value);
  } catch (err) {
    throw new InvalidArgumentError(field, (err as Error).message);
  }
  return value;
}

export function backupFilter(req: { vm: string; disk: string }): { vm?: string; disk?: string } {
  if (req.disk !== '' && req.vm === '') throw new InvalidArgumentError('disk', 'needs vm: the VM whose disk it is');
  return {
    vm: req.vm === '' ? undefined : catalogName('vm', req.vm),
    disk: req.disk === '' ? undefined : catalogName('disk', req.disk),
  };
}

export function prunePolicy(req: v1.PruneBackupsRequest__Output): {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
} {
  const policy = {
    keepLast: req.keepLast ?? undefined,
    keepDaily: req.keepDaily ?? undefined,
    keepWeekly: req.keepWeekly ?? undefined,
  };
  if (policy.keepLast === undefined && policy.keepDaily === undefined && policy.keepWeekly === undefined) {
    throw new InvalidArgumentError('keep_last', 'give at least one of keep_last, keep_daily, keep_weekly');
  }
  return policy;
}

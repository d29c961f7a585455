/**
 * The host's own schedule of hypervisor-level backups (coordinator.yaml's `hypervisorJobs`): what the
 * planner plans beside the guests' jobs, so that `headroomctl host-backup --job NAME` (or a vzdump hook)
 * asking for a HYPERVISOR token of that job gets the slot planned for it. Read and checked here; every
 * problem names its key.
 */
import { parseCron } from '../../common/util/cron';
import { DURATION_SYNTAX, parseDuration } from '../../common/util/duration';
import { isValidName } from '../../common/domain/names';
import { LIMITS } from '../domain/policy';
import type { DeclaredJob } from '../planning/plan-view';
import { type BackupDriver, DRIVER_KEYS, compileBackupDriver } from './backup-driver';

/** A hypervisor-level job: one run per VM at each occurrence of its schedule. */
export interface HypervisorJob extends DeclaredJob {
  vms: readonly string[];
  /** How the coordinator runs it itself (AdminService.StartBackup); absent: whoever asks for its token runs it. */
  driver?: BackupDriver;
}

const JOB_KEYS = ['name', 'vms', 'schedule', 'window', 'expectedDuration', 'priority', 'cost', ...DRIVER_KEYS];
const COST_KEYS = ['cpuPercent', 'ioBytesPerSec'];
/** A window or duration longer than a week is a mistake in the file, not a backup. */
const MAX_SPAN_MS = 7 * 24 * 3_600_000;

/**
 * The jobs of a `hypervisorJobs` list. `bad(key, problem)` is told of every problem, with keys such as
 * `hypervisorJobs[1].schedule`; the jobs with problems are left out.
 */
export function compileHypervisorJobs(raw: unknown, bad: (key: string, problem: string) => void): HypervisorJob[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    bad('hypervisorJobs', 'expected a list of jobs');
    return [];
  }
  const jobs: HypervisorJob[] = [];
  const names = new Set<string>();
  raw.forEach((entry: unknown, i) => {
    const at = `hypervisorJobs[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      bad(at, 'expected a mapping with name, vms, schedule, window and expectedDuration');
      return;
    }
    const e = entry as Record<string, unknown>;
    let failed = false;
    const fail = (key: string, problem: string) => {
      failed = true;
      bad(`${at}.${key}`, problem);
    };
    for (const k of Object.keys(e)) if (!JOB_KEYS.includes(k)) fail(k, `unknown key (expected one of ${JOB_KEYS.join(', ')})`);

    const name = typeof e.name === 'string' && isValidName(e.name) ? e.name : undefined;
    if (!name) fail('name', 'expected a job name (letters, digits, . _ : @ -)');
    else if (names.has(name)) fail('name', `"${name}" is used by another job`);
    else names.add(name);

    const vms = Array.isArray(e.vms) && e.vms.length > 0 && e.vms.every((v) => typeof v === 'string' && isValidName(v)) ? (e.vms as string[]) : undefined;
    if (!vms) fail('vms', 'expected a non-empty list of VM names');

    let schedule = '';
    if (typeof e.schedule !== 'string') fail('schedule', 'expected a cron expression such as "30 1 * * *"');
    else {
      try {
        parseCron(e.schedule, name ?? '');
        schedule = e.schedule;
      } catch (err) {
        fail('schedule', (err as Error).message);
      }
    }
    const duration = (key: string, required: boolean): number => {
      if (e[key] === undefined) {
        if (required) fail(key, `expected ${DURATION_SYNTAX}`);
        return 0;
      }
      try {
        const ms = parseDuration(e[key] as string | number);
        if (ms <= 0 || ms > MAX_SPAN_MS) throw new Error();
        return ms;
      } catch {
        fail(key, `expected ${DURATION_SYNTAX}, above 0 and at most 7 days`);
        return 0;
      }
    };
    const windowMs = duration('window', true);
    const expectedDurationMs = duration('expectedDuration', true);
    const priority = e.priority ?? 0;
    if (!Number.isInteger(priority)) fail('priority', 'expected an integer');

    let declaredCost = null;
    if (e.cost !== undefined) {
      const c = e.cost as Record<string, unknown>;
      if (typeof c !== 'object' || c === null) fail('cost', 'expected a mapping with cpuPercent and ioBytesPerSec');
      else {
        for (const k of Object.keys(c)) if (!COST_KEYS.includes(k)) fail(`cost.${k}`, `unknown key (expected one of ${COST_KEYS.join(', ')})`);
        const whole = (k: string, max: number) => {
          const v = c[k] ?? 0;
          if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > max) fail(`cost.${k}`, `expected a whole number from 0 to ${max}`);
          return Number(v);
        };
        declaredCost = { cpuPercent: whole('cpuPercent', LIMITS.maxCpuBudgetPercent), ioBytesPerSec: whole('ioBytesPerSec', LIMITS.maxIoBytesPerSec) };
      }
    }
    const driver = compileBackupDriver(e, fail);
    if (failed) return;
    jobs.push({ name: name!, vms: vms!, schedule, windowMs, expectedDurationMs, priority: priority as number, declaredCost, ...(driver && { driver }) });
  });
  return jobs;
}

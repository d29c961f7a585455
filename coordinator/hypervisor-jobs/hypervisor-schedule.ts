/**
 * The host's own schedule of hypervisor-level backups (coordinator.yaml's `hypervisorJobs`): what the
 * planner plans beside the guests' jobs, so that `headroomctl host-backup --job NAME` (or a vzdump hook)
 * asking for a HYPERVISOR token of that job gets the slot planned for it. Its schema is here; every problem
 * names its key.
 */
import { z } from 'zod';
import {
  accepted,
  across,
  duration,
  expected,
  integer,
  mapping,
  text,
  uniqueNames,
} from '../../common/util/config-schema';
import { parseCron } from '../../common/util/cron';
import { isValidName } from '../../common/domain/names';
import { LIMITS } from '../domain/policy';
import type { DeclaredJob } from '../planning/plan-view';
import { type BackupDriver, checkDriverKeys, driverShape, toBackupDriver } from './backup-driver';

/** A hypervisor-level job: one run per VM at each occurrence of its schedule. */
export interface HypervisorJob extends DeclaredJob {
  vms: readonly string[];
  /** How the coordinator runs it itself (AdminService.StartBackup); absent: whoever asks for its token runs it. */
  driver?: BackupDriver;
}

/** A window or duration longer than a week is a mistake in the file, not a backup. */
const MAX_SPAN_MS = 7 * 24 * 3_600_000;
const VM_NAMES = 'a non-empty list of VM names';

const jobSchema = mapping({
  name: text().refine(isValidName, { error: expected('a job name (letters, digits, . _ : @ -)') }),
  vms: z
    .array(z.string(), { error: expected(VM_NAMES) })
    .refine((vms) => vms.length > 0 && vms.every(isValidName), { error: expected(VM_NAMES) }),
  schedule: text('a cron expression such as "30 1 * * *"').check(
    accepted((schedule: string) => parseCron(schedule, '')),
  ),
  window: duration({ min: 1, max: MAX_SPAN_MS }),
  expectedDuration: duration({ min: 1, max: MAX_SPAN_MS }),
  priority: z.int({ error: expected('an integer') }).default(0),
  cost: mapping({
    cpuPercent: integer(0, LIMITS.maxCpuBudgetPercent).default(0),
    ioBytesPerSec: integer(0, LIMITS.maxIoBytesPerSec).default(0),
  }).optional(),
  // `target` is the driver's backup directory: the shared target (coordinator.yaml's targets) has its own key.
  sharedTarget: text()
    .refine(isValidName, { error: expected('the name of one of targets') })
    .optional(),
  ...driverShape,
})
  .check(
    across<Record<string, unknown>>((job, _fine, report) =>
      checkDriverKeys(job, (key, problem) => report([key], problem)),
    ),
  )
  .transform(
    ({
      name,
      vms,
      schedule,
      window,
      expectedDuration,
      priority,
      cost,
      sharedTarget,
      ...driverSettings
    }): HypervisorJob => {
      const driver = toBackupDriver(driverSettings);
      return {
        ...(sharedTarget && { target: sharedTarget }),
        name,
        vms,
        schedule,
        windowMs: window,
        expectedDurationMs: expectedDuration,
        priority,
        declaredCost: cost ?? null,
        ...(driver && { driver }),
      };
    },
  );

/** coordinator.yaml's `hypervisorJobs`: each entry's keys, and names used once. */
export const hypervisorJobsSchema = z.array(jobSchema, { error: expected('a list of jobs') }).check(uniqueNames('job'));

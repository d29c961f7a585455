/**
 * Which mechanism holds backups to their budgets in this guest: the best one that works, or the one the
 * configuration asks for (budget.enforcement). cgroup v2 when the agent's cgroup can hand the cpu and io
 * controllers to child groups; else cgroup v1 when groups can be made in the cpu, blkio and freezer
 * hierarchies; else signals. Why a better one was not used becomes the mechanism's detail, for the log
 * and every BudgetReport.
 */
import * as fs from 'node:fs';
import type { Logger } from '../../util/log';
import type { RemoveDir } from './cgroup-dir';
import { parseCgroupMounts, parseProcCgroup } from './cgroup-mounts';
import { prepareCgroupV1 } from './cgroup-v1';
import { Prepared, prepareCgroupV2 } from './cgroup-v2';
import { EnforcementMechanism, EnforcementMode, EnforcementUnavailableError } from './enforcer';
import type { ProcReader } from './process-usage';
import { signalsMechanism, SignalsOptions } from './signals';

export interface DetectOptions {
  mode: EnforcementMode;
  /** The cgroup to create the backups' groups in (budget.cgroupParent); default the agent's own. */
  cgroupParent?: string;
  /** The groups yield the CPU to their peers (CgroupAdapterOptions.background): the agent's backups. */
  background?: boolean;
  /** memory.high of every backup's group under cgroup v2 (budget.memoryHighMiB); 0: none; default derived from the budget. */
  memoryHighMiB?: number;
  log: Logger;
  /** The contents of /proc/self/mounts; read when absent. */
  mounts?: string;
  /** The contents of /proc/self/cgroup; read when absent. */
  selfCgroup?: string;
  sysBlock?: string;
  proc?: ProcReader;
  removeDir?: RemoveDir;
  alive?: (pid: number) => boolean;
  selfPid?: number;
  signals?: Partial<SignalsOptions>;
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The mechanism to use, logged with the reasons better ones were not used. Throws
 * EnforcementUnavailableError when the mode names a mechanism that cannot be used here.
 */
export function detectEnforcement(o: DetectOptions): EnforcementMechanism {
  const mounts = parseCgroupMounts(o.mounts ?? readOr('/proc/self/mounts'));
  const self = parseProcCgroup(o.selfCgroup ?? readOr('/proc/self/cgroup'));
  const common = {
    parent: o.cgroupParent,
    background: o.background,
    log: o.log,
    selfPid: o.selfPid,
    sysBlock: o.sysBlock,
    proc: o.proc,
    removeDir: o.removeDir,
    alive: o.alive,
  };
  const signals = signalsMechanism({ log: o.log, sysBlock: o.sysBlock, proc: o.proc, ...o.signals });
  const v2 = (): Prepared => {
    const mount = mounts.find((m) => m.version === 2);
    if (!mount) return { reason: 'cgroup v2: not mounted' };
    if (self.v2 === undefined) return { reason: 'cgroup v2: this process is in no v2 cgroup (/proc/self/cgroup)' };
    return prepareCgroupV2({
      ...common,
      mount: mount.path,
      own: self.v2,
      memoryHighBytes: o.memoryHighMiB === undefined ? undefined : o.memoryHighMiB * 1024 * 1024,
    });
  };
  const v1 = (): Prepared =>
    prepareCgroupV1({ ...common, mounts: mounts.filter((m) => m.version === 1), own: self.v1 });

  const reasons: string[] = [];
  let chosen: EnforcementMechanism | undefined;
  const forced = { 'cgroup-v2': v2, 'cgroup-v1': v1 }[o.mode as 'cgroup-v2' | 'cgroup-v1'];
  if (forced) {
    const p = forced();
    if ('reason' in p) throw new EnforcementUnavailableError(o.mode, p.reason);
    chosen = p.mechanism;
  } else if (o.mode === 'signals') {
    reasons.push('budget.enforcement asks for signals');
  } else {
    for (const prepare of [v2, v1]) {
      const p = prepare();
      if ('mechanism' in p) {
        chosen = p.mechanism;
        break;
      }
      reasons.push(p.reason);
    }
  }
  const detail = reasons.join('; ');
  const mechanism: EnforcementMechanism = chosen ? { ...chosen, detail, fallback: signals } : { ...signals, detail };
  o.log.info('backups will be held to their budgets with this mechanism', {
    enforcement: mechanism.enforcement,
    notUsed: detail || undefined,
  });
  return mechanism;
}

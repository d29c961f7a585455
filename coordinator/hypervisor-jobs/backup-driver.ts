/**
 * How the coordinator itself backs a VM up (coordinator.yaml, on a `hypervisorJobs` entry): the driver
 * settings, checked with every problem named by its key, and the `headroomctl host-backup` command line
 * that runs them for one VM. `{vm}` in a setting stands for the VM's name.
 */
import * as path from 'node:path';
import { DURATION_SYNTAX, parseDuration } from '../../common/util/duration';
import { parseByteRate } from '../../common/util/byte-rate';
import { QUIESCE_MODES, type QuiesceMode } from '../../host-backup/guest-quiesce';

/** What every driver takes: how consistent the snapshot must be, and what to do when a planned run fails. */
interface Common {
  /** host-backup --quiesce; absent is off. */
  quiesce?: QuiesceMode;
  /** How many times a planned run that failed is run again within its window (default 0). */
  retries?: number;
  /** How long after the failure (default RETRY_DELAY_MS). */
  retryDelayMs?: number;
}

/** The wait before a failed planned run is run again, unless retryDelay says otherwise. */
export const RETRY_DELAY_MS = 10 * 60_000;
/** More retries than this would be a loop, not a retry. */
const MAX_RETRIES = 10;

export type BackupDriver = Common &
  (
  | {
      driver: 'qmp';
      /** The QEMU process's QMP socket, with `{vm}`. */
      qmpSocket: string;
      /** The backup directory; absent: coordinator.yaml's backups.dir. */
      target?: string;
      /** host-backup's --disk LIST (NAME or NAME=NODE, comma-separated); absent: every drive. */
      disks?: string;
      maxIncrementals?: number;
      /** Bytes per second per disk. */
      speed?: number;
    }
  | { driver: 'command'; command: string[] }
  );

/** The keys of a hypervisorJobs entry that this module reads. */
export const DRIVER_KEYS = ['driver', 'qmpSocket', 'target', 'disks', 'maxIncrementals', 'speed', 'command', 'quiesce', 'retries', 'retryDelay'];
/** The keys every driver takes. */
const COMMON_KEYS = ['driver', 'quiesce', 'retries', 'retryDelay'];

const VM = /\{vm\}/g;

/**
 * The driver of one `hypervisorJobs` entry, or undefined when it names none (it is then only planned, and
 * run by whoever asks for its token). `fail(key, problem)` is told of each problem.
 */
export function compileBackupDriver(e: Record<string, unknown>, fail: (key: string, problem: string) => void): BackupDriver | undefined {
  const given = DRIVER_KEYS.filter((k) => e[k] !== undefined);
  if (e.driver === undefined) {
    for (const k of given) fail(k, 'needs driver (qmp or command)');
    return undefined;
  }
  const others = (allowed: string[]) => {
    for (const k of given) if (!COMMON_KEYS.includes(k) && !allowed.includes(k)) fail(k, `does not go with driver ${String(e.driver)}`);
  };
  const text = (key: string): string | undefined => {
    const v = e[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') fail(key, 'expected a non-empty string');
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  let quiesce: QuiesceMode | undefined;
  if (e.quiesce !== undefined) {
    if ((QUIESCE_MODES as readonly unknown[]).includes(e.quiesce)) quiesce = e.quiesce as QuiesceMode;
    else fail('quiesce', `expected require, try or off, got ${JSON.stringify(e.quiesce)}`);
  }
  const common: Common = quiesce && quiesce !== 'off' ? { quiesce } : {};
  if (e.retries !== undefined) {
    if (!Number.isSafeInteger(e.retries) || (e.retries as number) < 0 || (e.retries as number) > MAX_RETRIES) fail('retries', `expected a whole number from 0 to ${MAX_RETRIES}`);
    else if ((e.retries as number) > 0) common.retries = e.retries as number;
  }
  if (e.retryDelay !== undefined) {
    try {
      common.retryDelayMs = parseDuration(e.retryDelay as string | number);
    } catch {
      fail('retryDelay', `expected ${DURATION_SYNTAX}`);
    }
  }
  if (e.driver === 'qmp') {
    others(['qmpSocket', 'target', 'disks', 'maxIncrementals', 'speed']);
    const qmpSocket = text('qmpSocket');
    if (e.qmpSocket === undefined) fail('qmpSocket', 'required with driver qmp: the QMP socket, {vm} standing for the VM (/run/qemu/{vm}.qmp)');
    else if (qmpSocket && !path.isAbsolute(qmpSocket)) fail('qmpSocket', 'expected an absolute path');
    const target = text('target');
    if (target && !path.isAbsolute(target)) fail('target', 'expected an absolute path');
    const disks = text('disks');
    if (disks && !/^[A-Za-z0-9._-]+(=[A-Za-z0-9._#-]+)?(,[A-Za-z0-9._-]+(=[A-Za-z0-9._#-]+)?)*$/.test(disks)) {
      fail('disks', 'expected NAME or NAME=NODE, comma-separated');
    }
    let maxIncrementals: number | undefined;
    if (e.maxIncrementals !== undefined) {
      if (!Number.isSafeInteger(e.maxIncrementals) || (e.maxIncrementals as number) < 0) fail('maxIncrementals', 'expected a whole number >= 0');
      else maxIncrementals = e.maxIncrementals as number;
    }
    let speed: number | undefined;
    if (e.speed !== undefined) {
      try {
        speed = parseByteRate(String(e.speed));
      } catch (err) {
        fail('speed', (err as Error).message);
      }
    }
    return { driver: 'qmp', qmpSocket: qmpSocket ?? '', target, disks, maxIncrementals, speed, ...common };
  }
  if (e.driver === 'command') {
    others(['command']);
    const c = e.command;
    if (!Array.isArray(c) || c.length === 0 || !c.every((a) => typeof a === 'string') || c[0] === '') {
      fail('command', 'expected the command as a list of arguments, such as [vzdump, "{vm}", --mode, snapshot]');
      return undefined;
    }
    return { driver: 'command', command: c as string[], ...common };
  }
  fail('driver', `expected qmp or command, got ${JSON.stringify(e.driver)}`);
  return undefined;
}

export interface DriverRun {
  vm: string;
  /** The backup directory when the driver names none. */
  defaultTarget?: string;
  /** qmp: a full backup even when an incremental would do. */
  full?: boolean;
}

/** The driver part of host-backup's command line for one VM: after host-backup's own options. */
export function driverArguments(driver: BackupDriver, run: DriverRun): string[] {
  const vm = (s: string) => s.replace(VM, run.vm);
  const quiesce = driver.quiesce ? ['--quiesce', driver.quiesce] : [];
  if (driver.driver === 'command') return [...quiesce, '--', ...driver.command.map(vm)];
  const target = driver.target ?? run.defaultTarget;
  if (target === undefined) throw new Error('no target: set the job\'s target or backups.dir');
  const argv = [...quiesce, '--driver', 'qmp', '--qmp-socket', vm(driver.qmpSocket), '--target', vm(target)];
  if (driver.disks) argv.push('--disk', driver.disks);
  if (driver.maxIncrementals !== undefined) argv.push('--max-incrementals', String(driver.maxIncrementals));
  if (driver.speed !== undefined) argv.push('--speed', String(driver.speed));
  if (run.full) argv.push('--full');
  return argv;
}

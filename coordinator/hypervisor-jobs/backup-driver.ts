/**
 * How the coordinator itself backs a VM up (coordinator.yaml, on a `hypervisorJobs` entry): the driver
 * settings, checked with every problem named by its key, and the `headroomctl host-backup` command line
 * that runs them for one VM. `{vm}` in a setting stands for the VM's name.
 */
import { z } from 'zod';
import {
  absolutePath,
  argv,
  byteRate,
  choice,
  duration,
  expected,
  integer,
  text,
} from '../../common/util/config-schema';
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
    | {
        /** The VM is the libvirt domain of that name (or UUID). */
        driver: 'libvirt';
        /** libvirt's connection URI; absent: qemu:///system. */
        libvirtUri?: string;
        target?: string;
        /** Target devices (vda), comma-separated; absent: every disk of the domain. */
        disks?: string;
        maxIncrementals?: number;
        speed?: number;
      }
    | { driver: 'command'; command: string[] }
  );

const VM = /\{vm\}/g;
const DISKS = /^[A-Za-z0-9._-]+(=[A-Za-z0-9._#-]+)?(,[A-Za-z0-9._-]+(=[A-Za-z0-9._#-]+)?)*$/;
/** A libvirt connection URI (virsh -c): driver[+transport]://[host]/path[?query]. */
const LIBVIRT_URI = /^[a-z][a-z0-9+]*:\/\/[^\s]*$/;

/** The keys of a hypervisorJobs entry that say how the coordinator runs it. */
export const driverShape = {
  driver: choice(['qmp', 'libvirt', 'command']).optional(),
  qmpSocket: absolutePath().optional(),
  libvirtUri: text()
    .regex(LIBVIRT_URI, { error: expected('a libvirt URI such as qemu:///system') })
    .optional(),
  target: absolutePath().optional(),
  disks: text()
    .regex(DISKS, { error: expected('NAME or NAME=NODE, comma-separated') })
    .optional(),
  maxIncrementals: integer(0, Number.MAX_SAFE_INTEGER).optional(),
  speed: byteRate().optional(),
  command: argv('[vzdump, "{vm}", --mode, snapshot]').optional(),
  quiesce: choice(QUIESCE_MODES as readonly [QuiesceMode, ...QuiesceMode[]]).optional(),
  retries: integer(0, MAX_RETRIES).optional(),
  retryDelay: duration().optional(),
};
type DriverKey = keyof typeof driverShape;
type DriverSettings = { [K in DriverKey]?: z.output<(typeof driverShape)[K]> };

/** The keys every driver takes. */
const COMMON_KEYS: DriverKey[] = ['driver', 'quiesce', 'retries', 'retryDelay'];
const KEYS_OF: Record<BackupDriver['driver'], DriverKey[]> = {
  qmp: ['qmpSocket', 'target', 'disks', 'maxIncrementals', 'speed'],
  libvirt: ['libvirtUri', 'target', 'disks', 'maxIncrementals', 'speed'],
  command: ['command'],
};

/**
 * Which keys go with which driver, on one `hypervisorJobs` entry: `report(key, problem)` is told of each
 * mismatch. Runs on the entry as given, so that a key is named even when another one is invalid.
 */
export function checkDriverKeys(e: Record<string, unknown>, report: (key: string, problem: string) => void): void {
  const given = (Object.keys(driverShape) as DriverKey[]).filter((k) => e[k] !== undefined);
  if (e.driver === undefined) {
    for (const k of given) report(k, 'needs driver (qmp, libvirt or command)');
    return;
  }
  const allowed = KEYS_OF[e.driver as BackupDriver['driver']];
  if (!allowed) return; // an unknown driver is reported on its own key
  for (const k of given)
    if (!COMMON_KEYS.includes(k) && !allowed.includes(k)) report(k, `does not go with driver ${String(e.driver)}`);
  if (e.driver === 'qmp' && e.qmpSocket === undefined)
    report('qmpSocket', 'required with driver qmp: the QMP socket, {vm} standing for the VM (/run/qemu/{vm}.qmp)');
  if (e.driver === 'command' && e.command === undefined)
    report(
      'command',
      'required with driver command: the command as a list of strings, such as [vzdump, "{vm}", --mode, snapshot]',
    );
}

/** The driver of a valid `hypervisorJobs` entry, or undefined when it names none (whoever asks for its token runs it). */
export function toBackupDriver(e: DriverSettings): BackupDriver | undefined {
  if (e.driver === undefined) return undefined;
  const common: Common = e.quiesce && e.quiesce !== 'off' ? { quiesce: e.quiesce } : {};
  if (e.retries) common.retries = e.retries;
  if (e.retryDelay !== undefined) common.retryDelayMs = e.retryDelay;
  if (e.driver === 'command') return { driver: 'command', command: e.command!, ...common };
  const { qmpSocket, libvirtUri, target, disks, maxIncrementals, speed } = e;
  if (e.driver === 'libvirt')
    return { driver: 'libvirt', libvirtUri, target, disks, maxIncrementals, speed, ...common };
  return { driver: 'qmp', qmpSocket: qmpSocket!, target, disks, maxIncrementals, speed, ...common };
}

export interface DriverRun {
  vm: string;
  /** The backup directory when the driver names none. */
  defaultTarget?: string;
  /** qmp, libvirt: a full backup even when an incremental would do. */
  full?: boolean;
}

/** The driver part of host-backup's command line for one VM: after host-backup's own options. */
export function driverArguments(driver: BackupDriver, run: DriverRun): string[] {
  const vm = (s: string) => s.replace(VM, run.vm);
  const quiesce = driver.quiesce ? ['--quiesce', driver.quiesce] : [];
  if (driver.driver === 'command') return [...quiesce, '--', ...driver.command.map(vm)];
  const target = driver.target ?? run.defaultTarget;
  if (target === undefined) throw new Error("no target: set the job's target or backups.dir");
  const argv = [...quiesce, '--driver', driver.driver];
  if (driver.driver === 'qmp') argv.push('--qmp-socket', vm(driver.qmpSocket));
  else if (driver.libvirtUri !== undefined) argv.push('--libvirt-uri', driver.libvirtUri);
  argv.push('--target', vm(target));
  if (driver.disks) argv.push('--disk', driver.disks);
  if (driver.maxIncrementals !== undefined) argv.push('--max-incrementals', String(driver.maxIncrementals));
  if (driver.speed !== undefined) argv.push('--speed', String(driver.speed));
  if (run.full) argv.push('--full');
  return argv;
}

/**
 * Shared backup targets (coordinator.yaml's `targets`): storage that backups of many hosts write to (a
 * Proxmox Backup Server datastore, a NAS export), with a limit on concurrent backups and on their I/O. The
 * lessor holds one view of every host, so these limits count across hosts; in a cluster its leader runs
 * the one lessor, and they hold cluster-wide unchanged. Pure.
 */
import { formatRate } from '../../common/util/human';
import { InvalidArgumentError } from './errors';

export interface TargetLimits {
  name: string;
  /** The most backups writing to it at once, across every host; at least 1. */
  maxConcurrent: number;
  /** The most their I/O budgets may add up to, bytes/s; 0: no I/O limit. */
  ioBytesPerSec: number;
}

/** What the active tokens naming a target hold of it. */
export interface TargetLoad {
  active: number;
  ioBytesPerSec: number;
}

/** A target's limits and use now, as status and metrics show them. */
export interface TargetView extends TargetLimits {
  /** Its active tokens, on every host. */
  active: number;
  /** The sum of their I/O budgets, bytes/s. */
  ioInUse: number;
  /** Requests waiting (on any host) that name it. */
  queued: number;
}

/**
 * The I/O budget a token on `target` is granted, and counted against the target's: its kind's own budget,
 * or, when that is unlimited, the target's fair share (its budget over its concurrency), so that a target
 * with an I/O budget never carries a backup without a limit. Never more than the target's whole budget.
 */
export function targetIoBudget(kindBudget: number, target: TargetLimits): number {
  if (target.ioBytesPerSec === 0) return kindBudget;
  const share = Math.max(1, Math.floor(target.ioBytesPerSec / target.maxConcurrent));
  return kindBudget > 0 ? Math.min(kindBudget, target.ioBytesPerSec) : share;
}

/** Whether one more token with `ioBytesPerSec` fits in the target beside `load`. */
export function targetFits(limits: TargetLimits, load: TargetLoad, ioBytesPerSec: number): boolean {
  if (load.active >= limits.maxConcurrent) return false;
  return limits.ioBytesPerSec === 0 || load.ioBytesPerSec + ioBytesPerSec <= limits.ioBytesPerSec;
}

/** "target pbs1 full: 3/3 backups on it" or "… I/O 180 MiB/s + 40.0 MiB/s > 200 MiB/s", for a waiter. */
export function describeTargetFull(limits: TargetLimits, load: TargetLoad, ioBytesPerSec: number): string {
  if (load.active >= limits.maxConcurrent)
    return `target ${limits.name} full: ${load.active}/${limits.maxConcurrent} backups on it`;
  const io = `${formatRate(load.ioBytesPerSec)} + ${formatRate(ioBytesPerSec)} > ${formatRate(limits.ioBytesPerSec)}`;
  return `target ${limits.name} full: I/O ${io}`;
}

/**
 * The limits of the target a request names, or undefined for none.
 * @throws InvalidArgumentError naming `target` when no target of that name is configured.
 */
export function targetOf<T extends TargetLimits>(
  name: string | undefined,
  targets: ReadonlyMap<string, T>,
): T | undefined {
  if (!name) return undefined;
  const limits = targets.get(name);
  if (limits) return limits;
  const known = [...targets.keys()].sort();
  throw new InvalidArgumentError(
    'target',
    `no shared target "${name}" (coordinator.yaml's targets: ${known.length > 0 ? known.join(', ') : 'none'})`,
  );
}

/** Adds `io` of one token to `name`'s load in `loads`. */
export function addLoad(loads: Map<string, TargetLoad>, name: string, io: number): void {
  const load = loads.get(name) ?? { active: 0, ioBytesPerSec: 0 };
  loads.set(name, { active: load.active + 1, ioBytesPerSec: load.ioBytesPerSec + io });
}

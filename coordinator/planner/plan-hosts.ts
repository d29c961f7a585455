/**
 * Plans of several hosts that share targets (a cluster's, or one coordinator's hosts): the hosts are planned
 * one after another, in name order, each leaving room on every shared target for what the hosts planned
 * before it hold there, and for the backups running on every other host. So no instant of the plans has a
 * target over its limits, while each host keeps its own rules. Pure.
 */
import { targetIoBudget, type TargetLimits } from '../domain/targets';
import { planHost } from './planner';
import type { Plan, PlanInput, PlannedSlot, RunningBackup, TargetUse } from './types';

/** What slots and running backups hold of `target`. */
export function targetUses(
  target: TargetLimits,
  slots: readonly Pick<PlannedSlot, 'start' | 'end' | 'target' | 'targetIo'>[],
  running: readonly RunningBackup[] = [],
  now = -Infinity,
): TargetUse[] {
  const uses = slots
    .filter((s) => s.target === target.name)
    .map((s) => ({ start: s.start, end: s.end, io: s.targetIo ?? 0 }));
  for (const r of running) {
    if (r.target === target.name && r.expectedEnd > now)
      uses.push({ start: now, end: r.expectedEnd, io: targetIoBudget(r.cost.ioBytesPerSec, target) });
  }
  return uses;
}

/**
 * Plans each host, by name, on the targets' limits across all of them.
 * @throws InvalidArgumentError from planHost.
 */
export function planHosts(
  hosts: ReadonlyMap<string, Omit<PlanInput, 'targets'>>,
  targets: readonly TargetLimits[],
): Map<string, Plan> {
  const names = [...hosts.keys()].sort();
  const plans = new Map<string, Plan>();
  for (const name of names) {
    const input = hosts.get(name)!;
    const others = targets.map((t) => ({
      ...t,
      others: names
        .filter((other) => other !== name)
        .flatMap((other) => targetUses(t, plans.get(other)?.slots ?? [], hosts.get(other)!.running, input.now)),
    }));
    plans.set(name, planHost({ ...input, targets: others }));
  }
  return plans;
}

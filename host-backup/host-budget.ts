/**
 * `headroomctl host-backup`'s budget: holds the command's process tree to its budget with the best
 * mechanism this host offers (common/backup-run/budget/, as the agent does for a guest backup), and while it runs
 * controls its penalty on the host the way the coordinator does for a guest: it samples the host's load
 * (common/backup-run/load-collector.ts, the command's own usage taken out, so that the command is not throttled by
 * its own work), asks the pure budget controller (coordinator/domain/budget-controller.ts) at the host
 * policy's report interval, and throttles, pauses and resumes the command as it says. Every change is
 * told to the person at the terminal, with when and why.
 *
 * The budget at the start is the token's (the host's hypervisor budget, from the grant), capped by
 * --cpu-limit and --io-limit. When the host's policy cannot be read (the call is refused), the command is
 * held to that budget and not controlled, and host-backup says so.
 *
 * When the copy runs outside the command's tree (QEMU's block jobs for --driver qmp), the I/O budget and
 * the pauses also go to the copy through its CopyControl (hypervisor/copy-control.ts). The command itself
 * is then not paused: it is the one that carries the pause and the resume to the hypervisor.
 */
import { BackupUsage } from '../common/backup-run/budget/backup-usage';
import type { EnforcementMechanism, Usage } from '../common/backup-run/budget/enforcer';
import { budgetFromWire, describeBudgetState, RunBudget } from '../common/backup-run/budget/run-budget';
import type { RunningChild } from '../common/backup-run/child-process';
import type { Clock } from '../common/util/clock';
import { formatDuration } from '../common/util/duration';
import type { RunControl } from '../common/backup-run/guarded-run';
import { type LoadCollector, SystemLoadCollector, waitFigures } from '../common/backup-run/load-collector';
import type { Logger } from '../common/util/log';
import type { v1 } from '../proto';
import { enforcement } from '../proto/enums';
import {
  type BudgetState,
  type ControlledLease,
  decideBudget,
  grantedBudgetState,
  tighterBudget,
} from '../coordinator/domain/budget-controller';
import { type MachineLoad, SIGNAL_SOURCE_LABEL } from '../coordinator/domain/load-signals';
import type { Budget } from '../coordinator/domain/lease';
import { DEFAULT_POLICY, type HostPolicy } from '../coordinator/domain/policy';
import { formatRate } from '../common/util/human';
import { type OutsideCopy, OutsideCopyHolder } from './outside-copy';
import type { Emit } from './progress';

/**
 * The policy the controller applies to a command on the host, from the host's policy as GetPolicy gives
 * it. The full budget is the token's (a HYPERVISOR grant carries the host's hypervisor budget): the
 * policy's budget for guest tokens that carry none must not stand in for it.
 */
export function hostControlPolicy(wire: v1.Policy__Output): Required<HostPolicy> {
  // The controller reads numbers only; per-VM settings and fields it does not know keep their defaults.
  const policy: Record<string, unknown> = { ...DEFAULT_POLICY };
  for (const [key, value] of Object.entries(wire)) {
    if (typeof value === typeof policy[key] && typeof value !== 'object') policy[key] = value;
  }
  return { ...(policy as unknown as Required<HostPolicy>), budgetCpuPercent: 0, budgetIoBytesPerSec: 0 };
}

/**
 * "foreground CPU: throttle from 60%, pause from 85%, full again below 50%", for what the policy turns on;
 * the PSI thresholds first, which take the place of the others where the host reports PSI (load-signals.ts).
 */
export function describeThresholds(p: Required<HostPolicy>): string {
  const rate = (v: number) => `${(v / (1024 * 1024)).toFixed(1)} MiB/s`;
  const pct = (v: number) => `${v}%`;
  const signal = (name: string, throttle: number, pause: number, resume: number, f: (v: number) => string) => {
    const parts = [
      throttle > 0 ? `throttle from ${f(throttle)}` : '',
      pause > 0 ? `pause from ${f(pause)}` : '',
    ].filter(Boolean);
    return parts.length > 0 ? `${name}: ${[...parts, `full again below ${f(resume)}`].join(', ')}` : '';
  };
  const pressure = [
    signal(
      'I/O pressure',
      p.throttleAboveIoPressurePercent,
      p.pauseAboveIoPressurePercent,
      p.resumeBelowIoPressurePercent,
      pct,
    ),
    signal(
      'CPU pressure',
      p.throttleAboveCpuPressurePercent,
      p.pauseAboveCpuPressurePercent,
      p.resumeBelowCpuPressurePercent,
      pct,
    ),
    signal(
      'memory pressure',
      p.throttleAboveMemoryPressurePercent,
      p.pauseAboveMemoryPressurePercent,
      p.resumeBelowMemoryPressurePercent,
      pct,
    ),
  ].filter(Boolean);
  const others = [
    signal(
      'disk await',
      p.throttleAboveDiskAwaitMs,
      p.pauseAboveDiskAwaitMs,
      p.resumeBelowDiskAwaitMs,
      (v) => `${v} ms`,
    ),
    signal('foreground CPU', p.throttleAboveCpuPercent, p.pauseAboveCpuPercent, p.resumeBelowCpuPercent, pct),
    signal(
      'foreground disk I/O',
      p.throttleAboveIoBytesPerSec,
      p.pauseAboveIoBytesPerSec,
      p.resumeBelowIoBytesPerSec,
      rate,
    ),
  ].filter(Boolean);
  if (pressure.length === 0 && others.length === 0)
    return 'no thresholds set: the command keeps its budget whatever the load';
  const withPsi = pressure.length > 0 ? [`where the host reports PSI, ${pressure.join('; ')}`] : [];
  const without = others.length > 0 ? [`${pressure.length > 0 ? 'else ' : ''}${others.join('; ')}`] : [];
  return [...withPsi, ...without].join('; ');
}

/** The parts of a load sample the controller reads. */
function machineLoad(r: v1.LoadReport): MachineLoad {
  const n = (v: number | string | undefined) => Number(v ?? 0);
  return {
    cpuPercent: n(r.cpuPercent),
    diskReadBytesPerSec: n(r.diskReadBytesPerSec),
    diskWriteBytesPerSec: n(r.diskWriteBytesPerSec),
    backupCpuPercent: n(r.backupCpuPercent),
    backupIoBytesPerSec: n(r.backupIoBytesPerSec),
    ...waitFigures(r),
  };
}

export interface HostBudgetOptions {
  host: string;
  mechanism: EnforcementMechanism;
  /** --cpu-limit and --io-limit: caps on the token's budget (0: none). */
  limits: Budget;
  /** Reads the host's policy (AdminService GetPolicy); called once, when the command starts. */
  fetchPolicy(): Promise<v1.Policy__Output>;
  /** Monotonic, reading like Unix ms: the token's slot is on it, and so are the controller's decisions. */
  clock: Clock;
  /** Wall-clock Unix ms, for the times printed. */
  now(): number;
  /** Formats a wall-clock time for people. */
  formatTime(unixMs: number): string;
  log: Logger;
  emit: Emit;
  /** The copy, when it runs outside the command's process tree, and how its driver holds it (for the messages). */
  copy?: OutsideCopy;
  /** The host's load with `backupUsage` taken as the backup's share, primed; the real collector by default. */
  collector?(backupUsage: () => Usage): LoadCollector;
}

export class HostBudget implements RunControl {
  private readonly usage = new BackupUsage();
  private readonly run: RunBudget;
  private running = false;
  private timer?: NodeJS.Timeout;
  private tokenBudget: Budget = { cpuPercent: 0, ioBytesPerSec: 0 };
  private lease?: ControlledLease;
  private announced = false;
  /** The copy outside the tree, when there is one. */
  private readonly copy?: OutsideCopyHolder;

  constructor(private readonly o: HostBudgetOptions) {
    this.copy = o.copy && new OutsideCopyHolder(o.copy, o.log);
    this.run = new RunBudget({
      mechanism: o.mechanism,
      log: o.log,
      usage: this.usage,
      onReport: (r) => this.onReport(r),
    });
  }

  started(child: RunningChild, token: v1.Token__Output | undefined): void {
    this.tokenBudget = budgetFromWire(token?.budget);
    const budget = tighterBudget(this.tokenBudget, this.o.limits);
    this.lease = {
      // Its host's load decides ('host'): the VM's own pressure thresholds are for the VM's load.
      vm: token?.vm ?? '',
      slot: {
        start: Number(token?.slot?.startUnixMs ?? 0),
        expectedEnd: Number(token?.slot?.expectedEndUnixMs ?? 0),
        windowEnd: Number(token?.slot?.windowEndUnixMs ?? 0),
      },
      budget,
    };
    // host-backup always runs under a token (it skips when the coordinator is unreachable).
    this.run.started(child, token && { ...token, budget });
    if (child.pid === undefined || !token) return;
    this.running = true;
    const copy = this.copy;
    void copy
      ?.hold({ speed: budget.ioBytesPerSec, paused: false }, "the token's budget")
      .then(({ message }) => this.o.emit('copy-budget', { ...copy.state }, message));
    this.o.fetchPolicy().then(
      (wire) => this.control(hostControlPolicy(wire)),
      (err: Error) => {
        if (!this.running) return;
        this.o.emit(
          'uncontrolled',
          { error: err.message },
          `could not read the policy of ${this.o.host} (${err.message}): the command keeps its budget and is neither throttled nor paused by the host's load`,
        );
      },
    );
  }

  stopping(): void {
    this.halt();
    this.run.stopping();
  }

  async ended(): Promise<void> {
    this.halt();
    await this.run.ended();
  }

  private halt(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** What is in force at the start, with the mechanism and why no better one. Later reports are the changes'. */
  private onReport(r: v1.BudgetReport__Output): void {
    if (this.lease === undefined || this.announced) return;
    this.announced = true;
    const budget = budgetFromWire(r.budget);
    const limits = [
      this.o.limits.cpuPercent > 0 ? `--cpu-limit ${this.o.limits.cpuPercent}` : '',
      this.o.limits.ioBytesPerSec > 0 ? `--io-limit ${formatRate(this.o.limits.ioBytesPerSec)}` : '',
    ].filter(Boolean);
    const enforcedWith = enforcement.show(r.enforcement);
    const from = `the token's: ${describeBudgetState({ budget: this.tokenBudget, paused: false })}${limits.length > 0 ? `, capped by ${limits.join(' ')}` : ''}`;
    this.o.emit(
      'budget',
      {
        budget,
        paused: r.paused,
        enforcement: enforcedWith,
        detail: r.detail,
        tokenBudget: this.tokenBudget,
        limits: this.o.limits,
      },
      `budget: ${describeBudgetState({ budget, paused: r.paused })} (${from}), enforced with ${enforcedWith}${r.detail ? ` (${r.detail})` : ''}`,
    );
  }

  private systemCollector(backupUsage: () => Usage): LoadCollector {
    const collector = new SystemLoadCollector({ clock: this.o.clock, backupUsage });
    collector.prime();
    return collector;
  }

  /** Runs the budget controller on the host's load until the command stops. */
  private control(policy: Required<HostPolicy>): void {
    if (!this.running || !this.lease) return;
    const lease = this.lease;
    const collector = (this.o.collector ?? ((backupUsage) => this.systemCollector(backupUsage)))(() => {
      const tree = this.usage.total();
      return { ...tree, ioBytes: tree.ioBytes + 2 * (this.copy?.copiedBytes ?? 0) };
    });
    let state: BudgetState = grantedBudgetState(lease);
    this.o.emit(
      'controlling',
      { policy },
      `controlling the command's budget from the load of ${this.o.host} every ${formatDuration(policy.reportIntervalMs)}: ${describeThresholds(policy)}`,
    );
    const tick = async () => {
      try {
        await this.copy?.refresh();
        const load = await collector.sample();
        if (!this.running) return;
        const decision = decideBudget(policy, lease, machineLoad(load), state, this.o.clock.now(), 'host');
        const command = decision.command;
        if (!command) state = decision.state;
        else {
          const at = this.o.now();
          const tree = await this.run.set({ budget: command.budget, paused: command.paused && !this.copy });
          const copy = await this.copy?.hold(
            { speed: command.budget.ioBytesPerSec, paused: command.paused },
            `the load controller: ${command.reason}`,
          );
          if (!this.running) return;
          const result = copy ? { ok: tree.ok && copy.ok, message: `${tree.message}; ${copy.message}` } : tree;
          // A change the mechanism refused is not in force: the controller tries again at the next sample.
          if (result.ok) state = decision.state;
          const wanted = describeBudgetState(command);
          this.o.emit(
            'budget-change',
            {
              atUnixMs: at,
              reason: command.reason,
              signal: SIGNAL_SOURCE_LABEL[decision.signal],
              budget: command.budget,
              paused: command.paused,
              ok: result.ok,
              message: result.message,
            },
            `${this.o.formatTime(at)} ${command.reason}: ${result.ok ? `now ${result.message}` : `could not change to ${wanted}: ${result.message}`}`,
          );
        }
      } catch (err) {
        this.o.log.warn('could not control the budget from the host load', { error: err as Error });
      }
      if (this.running) this.timer = setTimeout(tick, policy.reportIntervalMs);
    };
    this.timer = setTimeout(tick, policy.reportIntervalMs);
  }
}

/**
 * One backup run's budget, as the guarded run's RunControl (common/backup-run/guarded-run.ts): puts the command's
 * process group under the enforcement mechanism the moment it is spawned, with its token's budget; carries
 * out the coordinator's budget changes and pauses (serialised, one at a time); lets the command go when it
 * is stopped, so that a paused command can die; removes its cgroups when it is gone; and says what is in
 * force in a BudgetReport whenever that changes.
 */
import type { v1 } from '../../../proto';
import { enforcement } from '../../../proto/enums';
import type { RunControl } from '../guarded-run';
import type { RunningChild } from '../child-process';
import type { Logger } from '../../util/log';
import type { BackupUsage } from './backup-usage';
import { Budget, EnforcedGroup, EnforcementMechanism, Enforcer, NO_LIMIT } from './enforcer';

/** What a backup is held to: its limits, and whether it is paused. */
export interface BudgetState {
  budget: Budget;
  paused: boolean;
}

/** The answer to a change, which becomes the command's CommandAck. */
export interface BudgetChangeResult {
  ok: boolean;
  message: string;
}

export interface RunBudgetOptions {
  mechanism: EnforcementMechanism;
  log: Logger;
  /** Where the run's usage is counted for the load reports. */
  usage?: BackupUsage;
  /** Told what is enforced when the command starts under a token, and whenever that changes. Must not throw. */
  onReport?(report: v1.BudgetReport__Output): void;
}

/** The wire's budget (absent: no limit) as the enforcers take it. */
export function budgetFromWire(b: v1.Budget__Output | null | undefined): Budget {
  return { ioBytesPerSec: Number(b?.ioBytesPerSec ?? 0), cpuPercent: b?.cpuPercent ?? 0 };
}

/** "cpu 20% of a core, io 10.0 MB/s", "no limits", with "paused" in front when it is. */
export function describeBudgetState(s: BudgetState): string {
  const limits = [
    s.budget.cpuPercent > 0 ? `cpu ${s.budget.cpuPercent}% of a core` : '',
    s.budget.ioBytesPerSec > 0 ? `io ${(s.budget.ioBytesPerSec / 1e6).toFixed(1)} MB/s` : '',
  ].filter(Boolean);
  const text = limits.length > 0 ? limits.join(', ') : 'no limits';
  return s.paused ? `paused (${text} once resumed)` : text;
}

const sameBudget = (a: Budget, b: Budget) => a.cpuPercent === b.cpuPercent && a.ioBytesPerSec === b.ioBytesPerSec;

type Phase = 'waiting' | 'running' | 'stopping' | 'ended';

export class RunBudget implements RunControl {
  private phase: Phase = 'waiting';
  private enforcer?: Enforcer;
  /** Why the enforcer is not the mechanism's own (its cgroup could not be made), for the report. */
  private fallbackNote = '';
  private token?: v1.Token__Output;
  /** Asked for before the command started. */
  private wanted?: BudgetState;
  private inForce: BudgetState = { budget: NO_LIMIT, paused: false };
  private watchdogReady: Promise<void> = Promise.resolve();
  /** The change under way; the next one waits for it. */
  private changing: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: RunBudgetOptions) {}

  /** The budget and pause in force now (or asked for, before the command started). */
  get state(): BudgetState {
    return this.phase === 'waiting' && this.wanted ? this.wanted : { ...this.inForce };
  }

  started(child: RunningChild, token: v1.Token__Output | undefined): void {
    this.token = token;
    if (child.pid === undefined || this.phase !== 'waiting') {
      this.phase = 'ended';
      return;
    }
    this.phase = 'running';
    this.watchdogReady = child.watchdogReady ?? Promise.resolve();
    this.enforcer = this.enforce({ pgid: child.pid, exempt: () => child.watchdogPid });
    if (!this.enforcer) return;
    this.o.usage?.add(this.enforcer);
    const initial = this.wanted ?? { budget: budgetFromWire(token?.budget), paused: false };
    try {
      // At once, before the command had time to fork or spend much.
      this.enforcer.apply(initial.budget);
      this.inForce = { budget: { ...initial.budget }, paused: false };
    } catch (err) {
      this.o.log.warn('could not apply the budget of the token', { error: err as Error });
    }
    if (initial.paused) void this.set(initial);
    else this.report();
  }

  /**
   * Holds the backup to `state` from now on: new limits, pause or resume. Before the command started, it is
   * kept for the start. Resolves with the answer for the CommandAck; never rejects.
   */
  set(state: BudgetState): Promise<BudgetChangeResult> {
    const change = this.changing.then(() => this.change(state));
    this.changing = change;
    return change;
  }

  stopping(): void {
    if (this.phase !== 'running') return;
    this.phase = 'stopping';
    this.enforcer?.release();
  }

  async ended(): Promise<void> {
    this.phase = 'ended';
    const enforcer = this.enforcer;
    if (!enforcer) return;
    await this.changing;
    this.o.usage?.remove(enforcer);
    await enforcer.close();
  }

  /** What is in force now, for the coordinator; undefined when no command runs under a token. */
  current(): v1.BudgetReport__Output | undefined {
    if (!this.token || !this.enforcer || this.phase !== 'running') return undefined;
    return {
      tokenId: this.token.tokenId,
      budget: { ...this.inForce.budget },
      paused: this.inForce.paused,
      enforcement: enforcement.toWire(this.enforcer.enforcement),
      detail: this.detail(),
    };
  }

  private report(): void {
    const report = this.current();
    if (report) this.o.onReport?.(report);
  }

  private detail(): string {
    return [this.enforcer?.detail, this.fallbackNote, this.o.mechanism.detail].filter(Boolean).join('; ');
  }

  /** The mechanism's enforcer for the group, else its fallback's; undefined (logged) when neither could take it. */
  private enforce(group: EnforcedGroup): Enforcer | undefined {
    const { mechanism, log } = this.o;
    try {
      return mechanism.enforce(group);
    } catch (err) {
      if (!mechanism.fallback) {
        log.error('the backup runs without budget enforcement', { pgid: group.pgid, error: err as Error });
        return undefined;
      }
      this.fallbackNote = `${mechanism.enforcement} could not take this backup (${(err as Error).message})`;
      log.warn(`could not use ${mechanism.enforcement} for the backup; using ${mechanism.fallback.enforcement}`, {
        pgid: group.pgid,
        error: err as Error,
      });
    }
    try {
      return mechanism.fallback.enforce(group);
    } catch (err) {
      log.error('the backup runs without budget enforcement', { pgid: group.pgid, error: err as Error });
      return undefined;
    }
  }

  private async change(state: BudgetState): Promise<BudgetChangeResult> {
    if (this.phase === 'waiting') {
      this.wanted = { budget: { ...state.budget }, paused: state.paused };
      return { ok: true, message: `${describeBudgetState(state)} from the start of the command` };
    }
    if (state.paused && !this.inForce.paused) await this.watchdogReady; // the watchdog must not be stopped with the rest
    if (this.phase !== 'running')
      return { ok: false, message: `the backup is ${this.phase === 'stopping' ? 'being stopped' : 'over'}` };
    const enforcer = this.enforcer;
    if (!enforcer) return { ok: false, message: 'this backup runs without budget enforcement (see the agent log)' };
    const before = this.state;
    try {
      if (!sameBudget(state.budget, this.inForce.budget)) {
        enforcer.apply(state.budget);
        this.inForce.budget = { ...state.budget };
      }
      if (state.paused !== this.inForce.paused) {
        if (state.paused) enforcer.pause();
        else enforcer.resume();
        this.inForce.paused = state.paused;
      }
    } catch (err) {
      this.o.log.warn('could not change the budget of the backup', {
        error: err as Error,
        wanted: describeBudgetState(state),
        inForce: describeBudgetState(this.inForce),
      });
      if (!sameState(before, this.inForce)) this.report();
      return { ok: false, message: `${(err as Error).message}; in force: ${describeBudgetState(this.inForce)}` };
    }
    if (!sameState(before, this.inForce)) this.report();
    return { ok: true, message: `${describeBudgetState(this.inForce)} (${enforcer.enforcement})` };
  }
}

const sameState = (a: BudgetState, b: BudgetState) => a.paused === b.paused && sameBudget(a.budget, b.budget);

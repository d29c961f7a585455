/**
 * Runs the agent's scheduled jobs: one guarded run (GUEST token → command → renew → release) per due
 * occurrence, never two at once for the same job, each held to its token's budget (common/backup-run/budget/run-budget.ts),
 * and carries out the coordinator's commands for them: revoke stops the run, budget changes its limits or
 * pauses and resumes it.
 */
import type { v1 } from '../../proto';
import type { Clock } from '../../common/util/clock';
import type { TokenClient } from '../../common/client/connection';
import { formatDuration } from '../../common/util/duration';
import { WaitLog } from './wait-log';
import { GuardedRunOptions, GuardedRunResult, runGuarded, StopReason } from '../../common/backup-run/guarded-run';
import type { ChildStdio } from '../../common/backup-run/child-process';
import type { Logger } from '../../common/util/log';
import type { BackupUsage } from '../../common/backup-run/budget/backup-usage';
import type { EnforcementMechanism } from '../../common/backup-run/budget/enforcer';
import { budgetFromWire, BudgetState, describeBudgetState, RunBudget } from '../../common/backup-run/budget/run-budget';
import type { JobConfig } from '../config';
import type { Occurrence } from './scheduler';
import type { CommandResult } from '../session';
import type { ConnectionContext } from '../../common/client/tls-diagnosis';

export interface JobRunnerOptions {
  client: TokenClient;
  vm: string;
  /** The host to ask tokens on: configured, or the one the coordinator placed us on ('' until it says). */
  host: () => string;
  clock: Clock;
  log: Logger;
  killGraceMs: number;
  onUnreachable: 'skip' | 'run';
  stdio?: ChildStdio;
  /** How the jobs are held to their budgets (common/backup-run/budget/detect.ts). */
  enforcement: EnforcementMechanism;
  /** Where the jobs' usage is counted for the load reports. */
  usage?: BackupUsage;
  /** Sends a BudgetReport to the coordinator. Must not throw. */
  onBudgetReport?(report: v1.BudgetReport): void;
  /** How the agent connects: refusals no retry can cure are told apart (tls-diagnosis.ts). */
  connection?: ConnectionContext;
  /** The guarded run; replaced by a fake in unit tests. */
  run?: (options: GuardedRunOptions) => Promise<GuardedRunResult>;
}

interface ActiveRun {
  job: string;
  occurrence: Occurrence;
  controller: AbortController;
  token?: v1.Token__Output;
  budget: RunBudget;
  done: Promise<GuardedRunResult>;
}

/** Remember this many revoked token ids and budget commands, for a command that overtakes its grant. */
const REVOKED_MEMORY = 64;

export class JobRunner {
  private readonly active = new Map<string, ActiveRun>();
  private readonly revoked: string[] = [];
  /** Budget commands for tokens not (yet) granted to a run of ours, newest last. */
  private readonly earlyBudgets = new Map<string, BudgetState>();
  private shuttingDown = false;
  /** Refusals no retry cures, each said once (the session says it too), not at every occurrence of every job. */
  private readonly refusalsSaid = new Set<string>();

  constructor(private readonly options: JobRunnerOptions) {}

  /** Names of the jobs running (or waiting for a token) now. */
  runningJobs(): string[] {
    return [...this.active.keys()];
  }

  /**
   * Starts a run of `job` for `occurrence`, unless the previous run of the job is still going (then it
   * logs that and returns undefined). Resolves with the result when the run ends; never rejects.
   */
  trigger(job: JobConfig, occurrence: Occurrence): Promise<GuardedRunResult> | undefined {
    const log = this.options.log.child({ job: job.name });
    if (this.shuttingDown) return undefined;
    const previous = this.active.get(job.name);
    if (previous) {
      log.warn('previous run still going; not starting this one', {
        scheduledAt: new Date(occurrence.scheduledAtUnixMs).toISOString(),
        previousScheduledAt: new Date(previous.occurrence.scheduledAtUnixMs).toISOString(),
      });
      return undefined;
    }
    const controller = new AbortController();
    const budget = new RunBudget({
      mechanism: this.options.enforcement,
      log,
      usage: this.options.usage,
      onReport: this.options.onBudgetReport,
    });
    const run: ActiveRun = {
      job: job.name,
      occurrence,
      controller,
      budget,
      done: undefined as unknown as Promise<GuardedRunResult>,
    };
    this.active.set(job.name, run);
    const windowText = `${new Date(occurrence.scheduledAtUnixMs).toISOString()} + ${formatDuration(job.windowMs)}`;
    log.debug('job due; asking for a token', { window: windowText });
    const runFn = this.options.run ?? runGuarded;
    const waitLog = new WaitLog(log);
    run.done = runFn({
      client: this.options.client,
      connection: this.options.connection,
      request: {
        kind: 'TOKEN_KIND_GUEST',
        host: this.options.host(),
        vm: this.options.vm,
        job: job.name,
        expectedDurationMs: job.expectedDurationMs,
        latestStartUnixMs: occurrence.windowEndUnixMs,
        windowEndUnixMs: occurrence.windowEndUnixMs,
        priority: job.priority,
        target: job.sharedTarget,
      },
      argv: job.command,
      stdio: this.options.stdio ?? 'inherit',
      log,
      clock: this.options.clock,
      signal: controller.signal,
      killGraceMs: this.options.killGraceMs,
      onUnreachable: this.options.onUnreachable,
      control: budget,
      hooks: {
        onQueued: (q) => waitLog.queued(q),
        onGranted: (token) => {
          waitLog.end();
          run.token = token;
          if (this.revoked.includes(token.tokenId)) {
            controller.abort({ kind: 'revoke', reason: 'revoked before the grant arrived' } satisfies StopReason);
          }
          const early = this.earlyBudgets.get(token.tokenId);
          if (early) {
            this.earlyBudgets.delete(token.tokenId);
            void budget.set(early);
          }
        },
        onStarted: (pid) =>
          log.info('job started', {
            pid,
            tokenId: run.token?.tokenId,
            fencing: run.token?.fencing,
            enforcement: budget.current()?.enforcement,
            budget: describeBudgetState(budget.state),
          }),
      },
    })
      .catch((err): GuardedRunResult => {
        log.error('job run failed unexpectedly', { error: err as Error });
        return { status: 'failed', exitCode: 1, message: String(err) };
      })
      .then((result) => {
        waitLog.end();
        this.active.delete(job.name);
        this.report(log, result, windowText);
        return result;
      });
    return run.done;
  }

  /** What the running jobs are held to, for the coordinator after a reconnection. */
  budgetReports(): v1.BudgetReport[] {
    return [...this.active.values()].flatMap((r) => r.budget.current() ?? []);
  }

  /** Carries out a command from the coordinator; the answer becomes its CommandAck. */
  handleCommand(command: v1.Command__Output): CommandResult | Promise<CommandResult> {
    const log = this.options.log;
    if (command.revoke) {
      const { tokenId, reason } = command.revoke;
      this.revoked.push(tokenId);
      if (this.revoked.length > REVOKED_MEMORY) this.revoked.shift();
      const run = this.runOf(tokenId);
      if (!run) {
        log.info('revoke for a token no job of ours holds', { tokenId, reason });
        return { ok: true, message: 'no job runs under this token' };
      }
      log.warn('token revoked; stopping the job', { job: run.job, tokenId, reason });
      run.controller.abort({ kind: 'revoke', reason } satisfies StopReason);
      return { ok: true, message: `stopping job ${run.job}` };
    }
    if (command.budget) {
      const { tokenId, budget, paused, reason } = command.budget;
      const state: BudgetState = { budget: budgetFromWire(budget), paused };
      const run = this.runOf(tokenId);
      if (!run) {
        // Most likely the run has ended; but the command may also have overtaken its grant.
        this.earlyBudgets.delete(tokenId);
        this.earlyBudgets.set(tokenId, state);
        if (this.earlyBudgets.size > REVOKED_MEMORY) this.earlyBudgets.delete(this.earlyBudgets.keys().next().value!);
        log.info('budget for a token no job of ours holds', { tokenId, reason });
        return { ok: true, message: 'no job runs under this token' };
      }
      log.info(paused ? 'pausing the job' : 'changing the budget of the job', {
        job: run.job,
        tokenId,
        budget: describeBudgetState(state),
        reason,
      });
      return run.budget.set(state);
    }
    if (command.granted) {
      const t = command.granted.token;
      // Our own grants arrive on the Acquire stream too; a hypervisor-level backup of this VM is the news.
      const level = t?.kind === 'TOKEN_KIND_HYPERVISOR' ? 'info' : 'debug';
      log[level]('a token was granted for this VM', { tokenId: t?.tokenId, kind: t?.kind, job: t?.job });
      return { ok: true, message: 'noted' };
    }
    log.warn('unknown command', { commandId: command.commandId });
    return { ok: false, message: 'unknown command' };
  }

  /** Stops every run (cancels waits, stops commands and releases) and waits for them to end. */
  async shutdown(reason: string): Promise<void> {
    this.shuttingDown = true;
    const runs = [...this.active.values()];
    for (const r of runs) r.controller.abort({ kind: 'shutdown', reason } satisfies StopReason);
    await Promise.all(runs.map((r) => r.done));
  }

  private runOf(tokenId: string): ActiveRun | undefined {
    return [...this.active.values()].find((r) => r.token?.tokenId === tokenId);
  }

  private report(log: Logger, result: GuardedRunResult, windowText: string): void {
    const fields = {
      status: result.status,
      exitCode: result.exitCode,
      durationMs: result.durationMs,
      message: result.message,
    };
    if (result.status !== 'misconfigured') this.refusalsSaid.clear();
    switch (result.status) {
      case 'succeeded':
        log.info('job finished', fields);
        return;
      case 'skipped':
        log.error(`job skipped: no token before its window closed (window ${windowText})`, fields);
        return;
      case 'misconfigured':
        if (this.refusalsSaid.has(result.message)) log.debug('job not run: still refused', fields);
        else log.error('job not run: the coordinator refuses this agent until a setting changes', fields);
        this.refusalsSaid.add(result.message);
        return;
      case 'failed':
      case 'denied':
      case 'lease-lost':
      case 'revoked':
        log.warn(`job ${result.status}`, fields);
        return;
      case 'cancelled':
        log.info('job cancelled', fields);
        return;
    }
  }
}

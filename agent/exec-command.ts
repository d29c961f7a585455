/**
 * `headroom-agent exec`: a one-shot wrapper for backups already started by cron or systemd timers. It
 * waits for a GUEST token (telling people on stderr what it waits for), runs the command with our stdio
 * held to the token's budget, renews, releases, and exits with the command's exit code — or 75 when it
 * could not or may not run. With no session, it gets no budget changes while the command runs.
 */
import * as fs from 'node:fs';
import { DEFAULT_KILL_GRACE_MS } from '../common/backup-run/child-process';
import { systemClock, Clock } from '../common/util/clock';
import { clientCredentials, connect, DEFAULT_ADDRESS, parseCoordinators, TlsFiles } from '../common/client/connection';
import { formatDuration, parseFlagDuration } from '../common/util/duration';
import { formatClock, formatCommand } from '../common/util/human';
import { describeGrant, describeQueued, queuedKey } from '../common/backup-run/wait-text';
import { GuardedRunHooks, runGuarded, StopReason } from '../common/backup-run/guarded-run';
import type { Logger } from '../common/util/log';
import { detectEnforcement } from '../common/backup-run/budget/detect';
import { EnforcementUnavailableError } from '../common/backup-run/budget/enforcer';
import { budgetFromWire, describeBudgetState, RunBudget } from '../common/backup-run/budget/run-budget';
import { AgentConfig, BudgetSettings, DEFAULT_CONFIG_PATH, agentConnection, loadAgentConfig } from './config';
import { ConfigError } from '../common/util/config-error';
import { UsageError } from '../common/util/usage-error';
import { resolveVmIdentity } from './identity';
import { enforcement as enforcements } from '../proto/enums';
import { errorText } from '../common/client/call-status';

export const DEFAULT_EXEC_WINDOW_MS = 3_600_000;
export const DEFAULT_EXEC_EXPECTED_DURATION_MS = 600_000;

export interface ExecFlags {
  job?: string;
  config?: string;
  window?: string;
  expectedDuration?: string;
  coordinator?: string;
  vm?: string;
  host?: string;
  priority?: string;
  killGrace?: string;
  onUnreachable?: string;
  ttl?: string;
}

export interface ExecPlan {
  job: string;
  argv: string[];
  coordinator: string;
  tls?: TlsFiles;
  vm: string;
  host: string;
  windowMs: number;
  expectedDurationMs: number;
  priority: number;
  killGraceMs: number;
  onUnreachable: 'skip' | 'run';
  ttlMs: number;
  /** From the config file, when there is one. */
  budget: BudgetSettings;
  /** The config file read, for messages. */
  configFile?: string;
}

/**
 * Combines flags, the config file (when given, or when the default one exists) and defaults. Throws a
 * UsageError listing every bad flag, or a ConfigError from the config file.
 */
export function planExec(flags: ExecFlags, argv: string[], defaultConfigPath = DEFAULT_CONFIG_PATH): ExecPlan {
  const problems: string[] = [];
  const duration = (flag: string, value: string | undefined, min: number): number | undefined => {
    if (value === undefined) return undefined;
    try {
      const ms = parseFlagDuration(value);
      if (ms < min) throw new Error(`expected at least ${formatDuration(min)}, got "${value}"`);
      return ms;
    } catch (err) {
      problems.push(`--${flag}: ${(err as Error).message}`);
      return undefined;
    }
  };
  let config: AgentConfig | undefined;
  if (flags.config !== undefined) config = loadAgentConfig(flags.config);
  else if (fs.existsSync(defaultConfigPath)) config = loadAgentConfig(defaultConfigPath);
  if (!flags.job) problems.push('--job: missing (the name of this backup job, as the coordinator should show it)');
  const configured = config?.jobs.find((j) => j.name === flags.job);
  if (argv.length === 0 && !configured)
    problems.push('missing the command to run after "--", e.g. -- restic backup /data');
  const windowMs = duration('window', flags.window, 1_000);
  const expectedDurationMs = duration('expected-duration', flags.expectedDuration, 1_000);
  const killGraceMs = duration('kill-grace', flags.killGrace, 0);
  const ttlMs = duration('ttl', flags.ttl, 1_000);
  let priority: number | undefined;
  if (flags.priority !== undefined) {
    priority = Number(flags.priority);
    if (!/^-?\d+$/.test(flags.priority) || !Number.isSafeInteger(priority) || Math.abs(priority) > 2 ** 31 - 1) {
      problems.push(`--priority: expected an integer, got "${flags.priority}"`);
    }
  }
  if (flags.onUnreachable !== undefined && flags.onUnreachable !== 'skip' && flags.onUnreachable !== 'run') {
    problems.push(`--on-unreachable: expected "skip" or "run", got "${flags.onUnreachable}"`);
  }
  if (flags.vm === '') problems.push('--vm: expected the VM identity, got ""');
  if (flags.coordinator !== undefined) {
    try {
      parseCoordinators(flags.coordinator);
    } catch (err) {
      problems.push(`--coordinator: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return {
    job: flags.job!,
    argv: argv.length > 0 ? argv : configured!.command,
    coordinator: flags.coordinator ?? config?.coordinator ?? DEFAULT_ADDRESS,
    tls: config?.tls,
    vm: flags.vm ?? config?.vm ?? '',
    host: flags.host ?? config?.host ?? '',
    windowMs: windowMs ?? configured?.windowMs ?? DEFAULT_EXEC_WINDOW_MS,
    expectedDurationMs: expectedDurationMs ?? configured?.expectedDurationMs ?? DEFAULT_EXEC_EXPECTED_DURATION_MS,
    priority: priority ?? configured?.priority ?? 0,
    killGraceMs: killGraceMs ?? config?.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
    onUnreachable: (flags.onUnreachable as 'skip' | 'run' | undefined) ?? config?.onUnreachable ?? 'skip',
    ttlMs: ttlMs ?? 0,
    budget: config?.budget ?? { enforcement: 'auto', cgroupParent: '' },
    configFile: config?.file,
  };
}

/**
 * The messages that tell a person at the terminal (or a cron mail) what exec is waiting for. `wallNow` is
 * the wall clock the times are shown against.
 */
export function execHooks(
  plan: ExecPlan,
  say: (line: string) => void,
  wallNow: () => number = Date.now,
): GuardedRunHooks {
  let lastQueued = '';
  let unreachableSaid = false;
  return {
    onQueued(q) {
      // The coordinator repeats its update; say only what changed.
      const key = queuedKey(q);
      if (key === lastQueued) return;
      lastQueued = key;
      say(`headroom-agent: job ${plan.job} is waiting for a GUEST token: ${describeQueued(q, wallNow())}`);
    },
    onGranted(token) {
      say(`headroom-agent: ${describeGrant(token, wallNow())}; running ${formatCommand(plan.argv)}`);
    },
    onUnreachable(info) {
      if (unreachableSaid) return;
      unreachableSaid = true;
      const until = info.giveUpAtUnixMs > 0 ? ` until ${formatClock(info.giveUpAtUnixMs, wallNow())}` : '';
      say(
        `headroom-agent: cannot reach the coordinator at ${plan.coordinator} (${errorText(info.error)}); retrying${until}`,
      );
    },
    onStopping(why) {
      say(`headroom-agent: stopping the command: ${why}`);
    },
  };
}

export interface ExecIo {
  log: Logger;
  /** One line for people on stderr. */
  say: (line: string) => void;
  clock?: Clock;
}

/**
 * Runs `exec` to its end and returns the process exit code. Throws UsageError/ConfigError for bad input,
 * ConfigError too when budget.enforcement names a mechanism this guest cannot offer.
 */
export async function runExec(plan: ExecPlan, io: ExecIo): Promise<number> {
  const clock = io.clock ?? systemClock;
  let enforcement;
  try {
    enforcement = detectEnforcement({
      mode: plan.budget.enforcement,
      cgroupParent: plan.budget.cgroupParent,
      background: true,
      memoryHighMiB: plan.budget.memoryHighMiB,
      log: io.log,
    });
  } catch (err) {
    if (!(err instanceof EnforcementUnavailableError)) throw err;
    const file = plan.configFile ?? DEFAULT_CONFIG_PATH;
    throw new ConfigError(file, [{ key: 'budget.enforcement', message: err.message }]);
  }
  let credentials;
  try {
    credentials = clientCredentials(plan.coordinator, { tls: plan.tls }, io.log);
  } catch (err) {
    throw new UsageError(`--coordinator: ${(err as Error).message}`);
  }
  const clients = connect(plan.coordinator, credentials);
  const vm = resolveVmIdentity(plan.vm).vm;
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) controller.abort({ kind: 'signal', signal } satisfies StopReason);
    else
      io.say(
        `headroom-agent: ${signal} again; the command gets SIGKILL ${formatDuration(plan.killGraceMs)} after the first signal`,
      );
  };
  const forwarded: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of forwarded) process.on(s, onSignal);
  try {
    const windowEnd = clock.now() + plan.windowMs;
    const result = await runGuarded({
      client: clients.token,
      connection: agentConnection(plan.coordinator, plan.tls),
      request: {
        kind: 'TOKEN_KIND_GUEST',
        host: plan.host,
        vm,
        job: plan.job,
        expectedDurationMs: plan.expectedDurationMs,
        latestStartUnixMs: windowEnd,
        windowEndUnixMs: windowEnd,
        priority: plan.priority,
        ttlMs: plan.ttlMs,
      },
      argv: plan.argv,
      stdio: 'inherit',
      log: io.log,
      clock,
      signal: controller.signal,
      killGraceMs: plan.killGraceMs,
      onUnreachable: plan.onUnreachable,
      control: new RunBudget({
        mechanism: enforcement,
        log: io.log,
        onReport: (r) => {
          const state = { budget: budgetFromWire(r.budget), paused: r.paused };
          if (state.budget.cpuPercent > 0 || state.budget.ioBytesPerSec > 0)
            io.say(
              `headroom-agent: the command is held to ${describeBudgetState(state)} (${enforcements.show(r.enforcement)})`,
            );
          io.log.info('the command is held to its budget', { ...r });
        },
      }),
      hooks: execHooks(plan, io.say),
    });
    // The one line for a denial too (its reason and the coordinator's message): no onDenied hook repeats it.
    if (result.status !== 'succeeded' || result.ranWithoutToken) io.say(`headroom-agent: ${result.message}`);
    // exitCode is EXIT_TEMPFAIL for a denial or a skip, EXIT_CONFIG for a refusal that a setting must cure.
    return result.exitCode;
  } finally {
    for (const s of forwarded) process.off(s, onSignal);
    clients.close();
  }
}

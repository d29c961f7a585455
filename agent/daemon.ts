/**
 * `headroom-agent run`: wires the pieces of the daemon together (identity, connection, budget enforcement,
 * session, job runner, scheduler, quiescer, certificate renewer) and takes them down again in order on
 * shutdown.
 */
import * as os from 'node:os';
import type { v1 } from '../proto';
import { Clock, systemClock } from '../common/util/clock';
import { clientCredentials, Clients, connect } from '../common/client/connection';
import { formatDuration } from '../common/util/duration';
import type { Logger } from '../common/util/log';
import { BackupUsage } from '../common/backup-run/budget/backup-usage';
import { detectEnforcement } from '../common/backup-run/budget/detect';
import { EnforcementUnavailableError } from '../common/backup-run/budget/enforcer';
import { type AgentConfig, agentConnection } from './config';
import { startControlEndpoint } from './freeze/control-endpoint';
import { FreezeState } from './freeze/freeze-state';
import { IdentitySources, resolveVmIdentity } from './identity';
import { JobRunner } from './jobs/job-runner';
import { LoadCollector, SystemLoadCollector } from '../common/backup-run/load-collector';
import { realDirReader, workloadCgroups, workloadPressure } from '../common/backup-run/workload-pressure';
import { createQuiescer } from './quiesce/configured-hooks';
import { autoThawReporter, quiesceCommand, thawReport } from './quiesce/quiesce-commands';
import { JobScheduler } from './jobs/scheduler';
import { CertificateRenewer } from './certificate-renewer';
import { AgentSession } from './session';
import { AGENT_VERSION } from './version';

export interface DaemonOptions {
  config: AgentConfig;
  log: Logger;
  /** Monotonic clock for leases and rates. */
  clock?: Clock;
  /** Wall clock for cron times. */
  wallClock?: Clock;
  collector?: LoadCollector;
  identity?: IdentitySources;
}

export interface RunningDaemon {
  readonly vm: string;
  readonly session: AgentSession;
  readonly runner: JobRunner;
  readonly scheduler: JobScheduler<AgentConfig['jobs'][number]>;
  /** Resolves once the control socket listens (or the default one was skipped); rejects naming the file and key. */
  readonly controlReady: Promise<void>;
  /** Stops scheduling, stops running jobs (releasing their tokens), closes the session. */
  stop(reason: string): Promise<void>;
}

/**
 * Starts the daemon. Throws when the coordinator's credentials cannot be built (plaintext to a remote
 * address, unreadable TLS files), or when budget.enforcement names a mechanism this guest cannot offer.
 */
export function startDaemon(options: DaemonOptions): RunningDaemon {
  const { config, log } = options;
  const clock = options.clock ?? systemClock;
  const wallClock = options.wallClock ?? { now: () => Date.now() };
  const identity = resolveVmIdentity(config.vm, options.identity);
  const hostname = options.identity?.hostname?.() ?? os.hostname();
  log.info('headroom-agent starting', {
    version: AGENT_VERSION,
    vm: identity.vm,
    vmFrom: identity.source,
    coordinator: config.coordinator,
    jobs: config.jobs.length,
  });
  if (identity.note) log.info('using the hostname as VM identity', { reason: identity.note });

  let enforcement;
  try {
    enforcement = detectEnforcement({
      mode: config.budget.enforcement,
      cgroupParent: config.budget.cgroupParent,
      background: true,
      memoryHighMiB: config.budget.memoryHighMiB,
      log,
    });
  } catch (err) {
    if (err instanceof EnforcementUnavailableError) throw new Error(`budget.enforcement: ${err.message}`);
    throw err;
  }
  const usage = new BackupUsage();
  // The files are read at each new connection: a renewed certificate is presented from the next one.
  const clients: Clients = connect(
    config.coordinator,
    clientCredentials(config.coordinator, { tls: config.tls, rereadFiles: true }, log),
  );
  const { caFile, certFile, keyFile } = config.tls ?? {};
  const renewer =
    caFile && certFile && keyFile
      ? new CertificateRenewer({
          files: { caFile, certFile, keyFile },
          client: clients.pki,
          fraction: config.tls?.renewAtFraction,
          log,
        })
      : undefined;
  const connection = agentConnection(config.coordinator, config.tls);
  const scope = enforcement.pressureScope;
  if (scope)
    log.info("load reports carry the workload's pressure: the cgroups beside the agent's, not the backups' own", {
      cgroups: workloadCgroups(scope, realDirReader).join(' ') || 'none yet (then /proc/pressure)',
    });
  const collector =
    options.collector ??
    new SystemLoadCollector({
      clock,
      backupUsage: () => usage.total(),
      ...(scope ? { workloadPressure: () => workloadPressure(scope, realDirReader) } : {}),
    });
  if (collector instanceof SystemLoadCollector) collector.prime();

  let session: AgentSession | undefined;
  const freeze = new FreezeState(clock, log);
  const runner = new JobRunner({
    client: clients.token,
    vm: identity.vm,
    host: () => config.host || session?.settings?.host || '',
    clock,
    log,
    killGraceMs: config.killGraceMs,
    onUnreachable: config.onUnreachable,
    stdio: 'inherit',
    enforcement,
    usage,
    onBudgetReport: (report) => session?.reportBudget(report),
    connection,
  });
  const jobs: v1.JobDeclaration[] = config.jobs.map((j) => ({
    name: j.name,
    schedule: j.schedule,
    windowMs: j.windowMs,
    expectedDurationMs: j.expectedDurationMs,
    declaredCost: { ioBytesPerSec: j.cost.ioBytesPerSec, cpuPercent: j.cost.cpuPercent },
    priority: j.priority,
    target: j.sharedTarget,
  }));
  // The freeze's bound is the quiescer's own timer: nothing the session does (or fails to do) holds a freeze.
  const quiescer = createQuiescer(config.quiesce, {
    log,
    onAutoThaw: autoThawReporter((report) => session?.reportQuiesce(report), log),
  });
  session = new AgentSession({
    client: clients.agent,
    connection,
    hello: () => ({ vm: identity.vm, host: config.host, agentVersion: AGENT_VERSION, hostname, jobs }),
    collector,
    log,
    onCommand: (command) =>
      command.freeze || command.thaw ? quiesceCommand(quiescer, command, log) : runner.handleCommand(command),
    budgetReports: () => runner.budgetReports(),
    freezeNotice: () => freeze.notice(),
  });
  const control = startControlEndpoint({ config, log, freeze, report: (notice) => session!.reportFreeze(notice) });
  control.ready.catch(() => undefined); // the caller awaits controlReady
  const scheduler = new JobScheduler({
    jobs: config.jobs,
    clock: wallClock,
    log,
    onDue: (job, occurrence) => {
      // A freeze by the hypervisor's own tools holds guest jobs until its thaw or its bound.
      if (!freeze.frozen) return void runner.trigger(job, occurrence);
      log.info('job due while the VM is frozen: it waits for the thaw', { job: job.name });
      void freeze.whenThawed().then(() => runner.trigger(job, occurrence));
    },
  });

  session.start();
  renewer?.start();
  scheduler.start();
  for (const { job, atUnixMs } of scheduler.nextRuns()) {
    const j = config.jobs.find((x) => x.name === job)!;
    log.info('job scheduled', { job, next: new Date(atUnixMs).toISOString(), window: formatDuration(j.windowMs) });
  }

  let stopping: Promise<void> | undefined;
  return {
    vm: identity.vm,
    session,
    runner,
    scheduler,
    controlReady: control.ready,
    stop(reason: string) {
      stopping ??= (async () => {
        log.info('headroom-agent stopping', { reason, running: runner.runningJobs() });
        scheduler.stop();
        renewer?.stop();
        await runner.shutdown(`the agent is stopping (${reason})`);
        // A guest is never left frozen by an agent that goes away.
        const frozen = quiescer.frozenToken;
        if (frozen) session!.reportQuiesce(thawReport(frozen, await quiescer.thaw(frozen)));
        freeze.end();
        await control.close();
        session!.stop();
        clients.close();
      })();
      return stopping;
    },
  };
}

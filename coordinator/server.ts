/**
 * Assembles the coordinator process: store, domain, agent registry, the gRPC services with health and
 * reflection, and the listening socket. main.ts only parses arguments and calls this.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { type Clock, systemClock } from '../common/util/clock';
import { SERVER_OPTIONS, parseAddress } from '../common/client/connection';
import type { Logger } from '../common/util/log';
import { headroomV1, packageDefinition } from '../proto';
import type * as v1 from '../proto/generated/headroom/v1';
import type { LoadView } from './domain/start-gate';
import { AgentRegistry } from './service/agent-registry';
import { type CoordinatorOptions, DEFAULT_MAX_EVENT_STREAMS, policyKey } from './config';
import { SystemLoadCollector } from '../common/backup-run/load-collector';
import { Coordinator } from './service/coordinator';
import { HostLoadMonitor } from './service/host-load-monitor';
import { BackupVerifications } from './service/backup-verifications';
import { PlanKeeper } from './planning/plan-keeper';
import { PlanWorker } from './planning/plan-worker';
import { QuiesceBroker } from './service/quiesce-broker';
import { PlacementMonitor } from './service/placement-monitor';
import { placementSource } from './placement/placement-config';
import { BackupRunner, type BackupRuns } from './hypervisor-jobs/backup-runner';
import type { ClusterHypervisorJobs } from './cluster/host-jobs';
import { HypervisorScheduler } from './hypervisor-jobs/hypervisor-scheduler';
import { BackupRunnerUnavailableError, InvalidArgumentError } from './domain/errors';
import { type HostPolicy, completePolicy } from './domain/policy';
import { serverSecurity } from './rpc/server-security';
import type { Authority } from './pki/authority';
import { adminService } from './rpc/admin-service';
import { agentService } from './rpc/agent-service';
import { pkiService } from './rpc/pki-service';
import { CallGuard, decodingGuarded } from './rpc/call-guard';
import { MAX_STREAMS_PER_CONNECTION } from './rpc/limits';
import { tokenService } from './rpc/token-service';
import * as wire from './rpc/wire';
import { SqliteStore } from './store/sqlite-store';
import type { Store } from './store/store';
import { type Route, startHttpListener } from './http/http-listener';
import { healthRoute, metricsRoute } from './http/routes';
import { CoordinatorMetrics } from './metrics/coordinator-metrics';
import { catalogChainBreaks } from './metrics/chain-breaks';
import { HistoryRetentionTask } from './service/history-retention';
import { adminReads } from './rpc/admin-reads';
import { dashboard as startDashboard } from './dashboard/dashboard-routes';
import { LoadRing } from './dashboard/load-ring';
import { vmView } from './dashboard/vm-view';
import { hostOverview } from './dashboard/host-overview';

export interface RunningServer {
  /** The address actually bound (the port is filled in when 0 was asked). */
  address: string;
  /** The HTTP listener's URL (`http://127.0.0.1:9470`), when `http` is configured. */
  httpUrl?: string;
  coordinator: Coordinator;
  /**
   * Stops: refuses new calls, denies waiting acquires with COORDINATOR_STOPPING, commits what was decided,
   * ends every stream with UNAVAILABLE, lets unary calls in flight finish, then closes the planning threads
   * and the database. Resolves with `forced` true when calls were still open after STOP_BOUND_MS.
   */
  stop(): Promise<{ forced: boolean }>;
  /** Serves the certificate files as they are now to new connections (SIGHUP); open connections keep theirs. */
  reloadCertificates(): void;
}

/** How long a stop waits for calls in flight (and the backup runs it started) before it stops regardless. */
export const STOP_BOUND_MS = 5_000;

const SERVICES = [
  'headroom.v1.TokenService',
  'headroom.v1.AgentService',
  'headroom.v1.AdminService',
  'headroom.v1.PkiService',
];

/** A cluster member's coordination (cluster/member.ts): the leader's etcd store instead of the SQLite file. */
export interface ClusterStore {
  store: Store;
  /** AdminService.GetCluster's answer. */
  info(): Promise<v1.ClusterInfo>;
  /** Hands every member's host load to `coordinator` until the returned function is called (cluster/host-loads.ts). */
  feedHostLoads(coordinator: Pick<Coordinator, 'ensureHost' | 'setHostLoad'>): () => void;
  /** Every member's placement, in place of this host's source, which its member runs (cluster/host-placements.ts). */
  placement(): ServerPlacement;
  /** With pki: the member's CA, its records shared with the cluster (cluster/shared-pki.ts); the member closes it. */
  authority?: Authority;
  /**
   * Every member's hypervisor jobs, which the leader plans (cluster/host-jobs.ts), and every member's backup
   * runs, which AdminService's backup calls reach (cluster/host-runs.ts): each member runs its own host's.
   */
  hypervisorJobs(): HostHypervisorJobs;
  backupRuns(
    jobs: HostHypervisorJobs,
    resolve: (vm: string) => string,
  ): Promise<BackupRuns & { stop(): Promise<void> }>;
}

/** Each host's hypervisor jobs as the leader plans them. */
export type HostHypervisorJobs = Pick<
  ClusterHypervisorJobs,
  'start' | 'stop' | 'of' | 'hosts' | 'onChange' | 'hostRunning'
>;

/** Where VM names resolve and migrations come from: this host's placement source, or the cluster's. */
export type ServerPlacement = Pick<
  PlacementMonitor,
  'start' | 'stop' | 'identityOf' | 'resolve' | 'nameOf' | 'vms' | 'sourceKind' | 'placementOf'
> & {
  attach(coordinator: Coordinator): void;
};

export async function startServer(
  options: CoordinatorOptions,
  log: Logger,
  clock: Clock = systemClock,
  cluster?: ClusterStore,
): Promise<RunningServer> {
  // First, so that every VM name of the configuration and of the first calls resolves to its identity.
  const placement: ServerPlacement =
    cluster?.placement() ??
    new PlacementMonitor(
      placementSource(options.placement, log.child({ component: 'placement' })),
      options.host,
      log.child({ component: 'placement' }),
    );
  await placement.start();
  const identityOf = (vm: string) => placement.identityOf(vm);
  options = { ...options, policy: withVmIdentities(options.policy, identityOf) };
  const store = cluster?.store ?? new SqliteStore(options.database, options.durability);
  const ids = { newId: () => randomUUID() };
  // In a cluster, every member's hypervisor jobs are planned here, and run by their own members
  // (cluster/member.ts): they and the members' runs are read while the state loads, so a new leader serves
  // no later for them.
  const clusterJobs = cluster?.hypervisorJobs();
  const clusterRuns = clusterJobs && cluster!.backupRuns(clusterJobs, identityOf);
  // Awaited below; not unhandled meanwhile if the state cannot be loaded.
  clusterRuns?.catch(() => undefined);
  const [coordinator] = await Promise.all([
    Coordinator.open({
      store,
      clock,
      ids,
      log,
      defaultHost: options.host,
      lessorOptions: { defaultPolicy: options.policy, targets: options.targets },
      // A leader whose fenced commit failed may have been replaced: it must not reload and go on.
      afterFailedCommit: cluster ? 'halt' : 'reload',
    }),
    clusterJobs?.start(),
  ]);
  placement.attach(coordinator);
  await applyConfiguredPolicy(coordinator, options, log);
  const registry = new AgentRegistry(store, ids, log, store.agents(), wire.token);
  coordinator.onCommitted(registry.onCommitted);
  const quiesce = new QuiesceBroker({
    agents: registry,
    record: (e) => coordinator.record(e),
    lease: (tokenId) => coordinator.state.lease(tokenId),
    clock,
    log,
  });
  coordinator.onCommitted(quiesce.onCommitted);
  const hypervisorJobs = (host: string) =>
    clusterJobs ? clusterJobs.of(host) : host === options.host ? options.hypervisorJobs : [];
  const planner = new PlanWorker();
  // GetPlan is occasional: its thread ends after 10 s idle rather than keep a large plan's heap.
  const viewPlanner = new PlanWorker(10_000);
  const plans = new PlanKeeper({
    coordinator,
    registry,
    hypervisorJobs,
    targets: options.targets,
    resolveVm: identityOf,
    clock,
    log,
    plan: (input) => planner.plan(input),
    planView: (input) => viewPlanner.plan(input),
  });
  plans.start();
  // A member's host may have had no token nor agent yet: it is a host of the coordination once it has jobs.
  const planJobsOf = (host: string) =>
    coordinator
      .ensureHost(host)
      .then(() => plans.declaredChanged(host))
      .catch((error: Error) => log.warn("could not plan a member's hypervisor jobs", { host, error }));
  clusterJobs?.onChange(planJobsOf);
  for (const host of clusterJobs?.hosts() ?? []) void planJobsOf(host);
  // The dashboard's load strip: the hosts' samples and the budget changes, kept in memory as they happen.
  const loads = new LoadRing();
  const toStartGate = async (host: string, load: LoadView | undefined) => {
    await coordinator.setHostLoad(host, load);
    if (load) loads.addSample(host, load);
  };
  // In a cluster each member samples its own host, the leader's included (cluster/member.ts).
  const hostLoad = cluster
    ? { stop: cluster.feedHostLoads({ ensureHost: (h) => coordinator.ensureHost(h), setHostLoad: toStartGate }) }
    : new HostLoadMonitor({
        sink: (load) => toStartGate(options.host, load),
        intervalMs: () => coordinator.state.host(options.host).policy.reportIntervalMs,
        collector: new SystemLoadCollector({ clock }),
        clock,
        log,
      });
  registry.onBudgetChange(({ lease, at, level, reason }) =>
    loads.addMark({
      host: lease.host,
      vm: placement.nameOf(lease.vm) ?? lease.vm,
      job: lease.job,
      tokenId: lease.tokenId,
      atUnixMs: at,
      level,
      reason,
    }),
  );
  if (hostLoad instanceof HostLoadMonitor) hostLoad.start();

  const security = await serverSecurity(
    options,
    { defaultHost: options.host, lease: (tokenId) => coordinator.state.lease(tokenId), vmIdentity: identityOf },
    log,
    cluster?.authority,
  );
  const guard = new CallGuard(log);
  // Who may call first (refused callers take no stream slot), then the stream caps and request decoding.
  const server = new grpc.Server({
    ...SERVER_OPTIONS,
    'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION,
    interceptors: [...security.interceptors, guard.interceptor],
  });
  server.addService(
    decodingGuarded(headroomV1.TokenService.service),
    tokenService(coordinator, quiesce, log, placement, ({ kind, host, job }) =>
      kind === 'HYPERVISOR' ? hypervisorJobs(host).find((j) => j.name === job)?.target : undefined,
    ),
  );
  server.addService(
    decodingGuarded(headroomV1.AgentService.service),
    agentService(coordinator, registry, plans, clock, log, quiesce, placement),
  );
  let address = '';
  // Wall-clock times of verifications, for people.
  const verifications = new BackupVerifications(Date.now);
  // A single host runs its own hypervisor jobs; in a cluster each member runs its host's, and calls reach it.
  const ownRunner = clusterJobs ? undefined : hostBackupRunner(options, () => address, identityOf, log);
  const runner = ownRunner ?? (await clusterRuns!);
  const scheduler =
    ownRunner &&
    new HypervisorScheduler({
      plans,
      runner: ownRunner,
      jobs: options.hypervisorJobs,
      host: options.host,
      resolveVm: identityOf,
      clock,
      log: log.child({ component: 'hypervisor-scheduler' }),
    });
  server.addService(
    decodingGuarded(headroomV1.AdminService.service),
    adminService(
      coordinator,
      registry,
      plans,
      log,
      { backupDir: options.backups?.dir, runner, verifications },
      placement,
      cluster,
    ),
  );
  server.addService(
    decodingGuarded(headroomV1.PkiService.service),
    pkiService(security.authority, log, security.serverCertificate),
  );
  let stopping: Promise<{ forced: boolean }> | undefined;
  // Set before `stopping`, which is assigned only once the stop's first synchronous part has run.
  let stopRequested = false;
  // The truth about serving: not while the database cannot commit (every grant is refused then), nor once
  // stopping. A failed commit says so at once; the next one that succeeds (a renewal will come) says so too.
  const notServing = () => (stopRequested ? 'the coordinator is stopping' : coordinator.storeFailure);
  const health = new HealthImplementation(Object.fromEntries(['', ...SERVICES].map((s) => [s, 'SERVING'])));
  const tellHealth = () => {
    for (const s of ['', ...SERVICES]) health.setStatus(s, notServing() === undefined ? 'SERVING' : 'NOT_SERVING');
  };
  coordinator.onStoreHealth(tellHealth);
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, security.credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const { host } = parseAddress(options.listen);
  address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  // Only once it can call itself back.
  scheduler?.start();

  const metrics = new CoordinatorMetrics({
    coordinator,
    agents: registry,
    plans,
    placement,
    host: options.host,
    chainBreaks: catalogChainBreaks(catalogDirs(options), log.child({ component: 'metrics' })),
    lastSuccesses: store.lastSuccesses(),
  });
  const retention = new HistoryRetentionTask({ store, retention: options.history, clock, log });
  retention.start();
  const dashboard = startDashboard({
    reads: adminReads(coordinator, registry, plans, placement),
    coordinator,
    loads,
    vm: vmView({ coordinator, registry, plans, placement, verifications, catalogDirs: catalogDirs(options) }),
    overview: hostOverview(coordinator, placement),
    maxEventStreams: options.http?.maxEventStreams ?? DEFAULT_MAX_EVENT_STREAMS,
    log: log.child({ component: 'dashboard' }),
  });
  const routes = new Map<string, Route>([
    ['/metrics', metricsRoute(() => metrics.scrape())],
    ['/healthz', healthRoute(notServing)],
    ...dashboard.routes,
  ]);
  const http = await startHttpListener(
    options,
    routes,
    log.child({ component: 'http' }),
    (serial) => security.authority?.isRevoked(serial) ?? false,
  );

  const stop = () =>
    (stopping ??= (async () => {
      stopRequested = true;
      tellHealth();
      retention.stop();
      plans.stop();
      hostLoad.stop();
      const placementStopped = placement.stop();
      scheduler?.stop();
      // Waiting acquires are denied with COORDINATOR_STOPPING and what was decided is committed, before the
      // streams are ended: a caller hears why, and nothing is cut short under a commit.
      await coordinator.stop();
      quiesce.stop();
      guard.endAll();
      let bound: NodeJS.Timeout | undefined;
      const forced = await Promise.race([
        Promise.all([new Promise<void>((resolve) => server.tryShutdown(() => resolve())), runner.stop()]).then(
          () => false,
        ),
        new Promise<boolean>((resolve) => (bound = setTimeout(() => resolve(true), STOP_BOUND_MS))),
      ]);
      clearTimeout(bound);
      // Closes the listeners; the connections still open end with the process (grpc-js destroys only the
      // sessions it tracks for channelz, which is off).
      if (forced) server.forceShutdown();
      await Promise.all([planner.close(), viewPlanner.close(), placementStopped, clusterJobs?.stop(), http?.close()]);
      dashboard.close();
      metrics.close();
      store.close();
      security.close();
      return { forced };
    })());
  return {
    address,
    ...(http ? { httpUrl: `${http.scheme}://${http.address}` } : {}),
    coordinator,
    stop,
    reloadCertificates: () => {
      security.reload();
      http?.reloadCertificates();
    },
  };
}

/** The backup catalogs hypervisor jobs write to: backups.dir, and the qmp and libvirt jobs' own targets. */
function catalogDirs(options: CoordinatorOptions): string[] {
  const targets = options.hypervisorJobs.flatMap((job) =>
    job.driver && 'target' in job.driver && job.driver.target ? [job.driver.target] : [],
  );
  return [...(options.backups ? [options.backups.dir] : []), ...targets];
}

/** The policy with its per-VM keys (vmStartBelow, vmPressure) turned into VM identities: `web1` may be written for a UUID. */
function withVmIdentities(policy: HostPolicy, identityOf: (vm: string) => string): HostPolicy {
  const byIdentity = <T>(byVm: Record<string, T>) =>
    Object.fromEntries(Object.entries(byVm).map(([vm, t]) => [identityOf(vm), t]));
  return {
    ...policy,
    ...(policy.vmStartBelow && { vmStartBelow: byIdentity(policy.vmStartBelow) }),
    ...(policy.vmPressure && { vmPressure: byIdentity(policy.vmPressure) }),
  };
}

/**
 * The file wins at start for the policy keys it sets (docs/configuration.md): an administrator who edits
 * coordinator.yaml expects it to take effect, while the keys it leaves out keep what `policy set` stored.
 */
async function applyConfiguredPolicy(coordinator: Coordinator, options: CoordinatorOptions, log: Logger) {
  for (const host of coordinator.state.hostNames()) {
    const stored = completePolicy(coordinator.state.host(host).policy);
    const patch: Partial<HostPolicy> = {};
    for (const field of options.policySet) {
      const [from, to] = [stored[field], options.policy[field]];
      if (isDeepStrictEqual(from, to)) continue;
      (patch as Record<string, unknown>)[field] = to;
      log.info('policy key changed by the configuration', {
        host,
        key: policyKey(field),
        from: JSON.stringify(from),
        to: JSON.stringify(to),
      });
    }
    if (Object.keys(patch).length === 0) continue;
    try {
      await coordinator.setPolicy(host, patch);
    } catch (e) {
      // The file's keys are valid together, but may not be with the values `policy set` stored for the rest.
      if (!(e instanceof InvalidArgumentError)) throw e;
      log.warn("the configuration's policy keys were not applied to this host", {
        host,
        reason: e.message,
        fix: 'set the related keys in the file too, or change them with headroomctl policy set',
      });
    }
  }
}

/**
 * The runner of this host's hypervisor jobs: `headroomctl host-backup` children that call back the gRPC
 * address `address()` — the coordinator's own, or a cluster member's front door (cluster/member.ts).
 */
export function hostBackupRunner(
  options: CoordinatorOptions,
  address: () => string,
  resolve: (vm: string) => string,
  log: Logger,
  changed?: () => void,
): BackupRunner {
  return new BackupRunner({
    jobs: options.hypervisorJobs,
    resolve,
    host: options.host,
    selfOptions: () => selfOptions(options, address()),
    defaultTarget: options.backups?.dir,
    // Wall-clock times of runs, for people.
    now: Date.now,
    log: log.child({ component: 'backup-runner' }),
    ...(changed ? { changed } : {}),
  });
}

/**
 * headroomctl's global options for a backup run the coordinator starts (backup-runner.ts) to call this
 * coordinator (or, in a cluster, the member's front door) back: over loopback (selfAddress), plaintext when
 * it serves plaintext (only allowed on loopback), else as the admin identity `pki init`
 * wrote into the coordinator's own PKI directory — the files beside the CA key the coordinator holds
 * anyway, so no secret leaves its hands. With certificates made elsewhere (`tls:`) it has no identity to
 * call itself with.
 */
function selfOptions(options: CoordinatorOptions, address: string): string[] {
  const coordinator = ['--coordinator', selfAddress(address)];
  if (options.pki) return [...coordinator, '--pki-dir', options.pki.dir];
  if (options.plaintext) return coordinator;
  throw new BackupRunnerUnavailableError(
    'the coordinator serves TLS with certificates made elsewhere (tls:), so it has no client identity to start backups with: use pki.dir, or run headroomctl host-backup from cron or a vzdump hook',
  );
}

/** The address it listens on, dialled from this machine: a wildcard listen address is dialled as loopback. */
export function selfAddress(address: string): string {
  const { host, port } = parseAddress(address);
  const loopback = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return `${loopback}:${port}`;
}

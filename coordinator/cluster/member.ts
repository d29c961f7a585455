/**
 * A coordinator in cluster mode (coordinator.yaml `etcd:`): one member per host. Each member campaigns for
 * the lead through etcd and forwards every call it receives to the leader (forwarder.ts). The member that
 * is elected loads the state from etcd and serves the coordination — the same server as a single host's
 * (server.ts), over the leader's fenced etcd store — on its peer address, until it is deposed or a commit
 * fails; then it stops serving at once and campaigns again.
 *
 * With pki (docs/cluster.md): the front door serves mutual TLS and names each checked caller to the leader
 * (front-door-tls.ts), which serves its peer address with the same mutual TLS and authorizes every call as
 * its caller; the CA's records (revocations included) are shared through etcd (shared-pki.ts).
 *
 * Whoever leads, each member keeps its own host's duties: it samples the host's load, runs its placement
 * source, and runs its hypervisor jobs (member-jobs.ts).
 */
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { formatAddress, parseAddress } from '../../common/client/connection';
import { type Clock, systemClock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { CoordinatorOptions, EtcdOptions } from '../config';
import { type RunningServer, startServer } from '../server';
import { ClusterHypervisorJobs } from './host-jobs';
import { ClusterBackupRuns } from './host-runs';
import { runMemberJobs } from './member-jobs';
import { version } from '../../package.json';
import { clusterInfo, endpointUrl, registerMember } from './cluster-view';
import { EtcdStore } from './etcd-store';
import { feedHostLoads, publishHostLoad } from './host-loads';
import { ClusterPlacement, publishPlacement } from './host-placements';
import { PlacementMonitor } from '../service/placement-monitor';
import { placementSource } from '../placement/placement-config';
import { HostLoadMonitor } from '../service/host-load-monitor';
import { SystemLoadCollector } from '../../common/backup-run/load-collector';
import { Forwarder, PLAINTEXT } from './forwarder';
import { secureFrontDoor, tlsFrontDoorSecurity } from './front-door-tls';
import { sharePki } from './shared-pki';
import { etcdTls } from './etcd-tls';
import { Authority } from '../pki/authority';
import { pkiFiles } from '../pki/state-dir';
import { Leadership } from './leadership';

export interface RunningMember {
  /** The member's front door (`listen`), which forwards to the leader. */
  address: string;
  /** Whether this member leads now, and where the leader serves. */
  leadership(): { leader: string | undefined; leading: boolean };
  stop(): Promise<{ forced: boolean }>;
  reloadCertificates(): void;
}

export async function startMember(
  options: CoordinatorOptions & { etcd: EtcdOptions },
  log: Logger,
  clock: Clock = systemClock,
): Promise<RunningMember> {
  const { etcd } = options;
  // No retries or circuit breakers in the client: every call has its deadline, the election retries on
  // its own, and a breaker would refuse calls for seconds after etcd's quorum returns.
  const etcdClient = (endpoints: readonly string[]) =>
    new Etcd3({
      hosts: endpoints.map(endpointUrl),
      dialTimeout: 2_000,
      faultHandling: { host: () => noop, global: noop },
      ...etcdTls(etcd),
    });
  const client = etcdClient(etcd.endpoints);
  const prefix = `/headroom/${etcd.cluster}/`;
  const pki = options.pki ? pkiFiles(options.pki.dir) : undefined;
  const authority = options.pki ? await Authority.open(options.pki.dir, log) : undefined;
  const stopSharing = authority ? await sharePki(client, prefix, authority, log) : () => {};
  let serving: RunningServer | undefined;
  // Taking and leaving the lead happen one after the other: the peer address is bound by one server at a time.
  let transition = Promise.resolve();
  const leadership = new Leadership(
    { client, prefix, address: etcd.peerListen, ttlSeconds: Math.ceil(etcd.leaseTtlMs / 1000), log },
    {
      elected: (guard) => {
        transition = transition.then(async () => {
          if (!leadership.isLeader) return;
          try {
            const store = new EtcdStore(client, prefix, guard);
            const server = await startServer(
              { ...options, listen: etcd.peerListen, plaintext: !pki },
              log.child({ role: 'leader' }),
              clock,
              {
                store,
                info: () => clusterInfo(client, prefix, etcd.cluster, etcd.endpoints, (e) => etcdClient([e])),
                feedHostLoads: (coordinator) => feedHostLoads(client, prefix, coordinator, clock, log),
                ...(authority ? { authority } : {}),
                placement: () =>
                  new ClusterPlacement(client, prefix, options.host, log.child({ component: 'placement' })),
                hypervisorJobs: () =>
                  new ClusterHypervisorJobs(client, prefix, log.child({ component: 'hypervisor-jobs' })),
                backupRuns: async (jobs, resolve) => {
                  const runs = new ClusterBackupRuns(
                    client,
                    prefix,
                    jobs,
                    resolve,
                    log.child({ component: 'backup-runs' }),
                  );
                  await runs.follow();
                  return runs;
                },
              },
            );
            serving = server;
            server.coordinator.onStoreHealth((failure) => {
              if (failure !== undefined) leadership.resign(failure);
            });
            log.info('leading: the coordination is served', { peer: server.address });
          } catch (e) {
            log.error('could not take the lead: campaigning again', { error: e as Error });
            leadership.resign((e as Error).message);
          }
        });
      },
      deposed: () => {
        transition = transition.then(async () => {
          const server = serving;
          serving = undefined;
          await server?.stop();
        });
      },
    },
  );
  const forwarder = new Forwarder(
    {
      // Our own address while we do not serve (stepping down, or not yet up) is no leader to send to.
      address: () => (leadership.leader === etcd.peerListen && !serving ? undefined : leadership.leader),
      absence: () =>
        `no cluster leader at the moment: the members are electing one, or etcd (${etcd.endpoints.join(', ')}) has no quorum; call again shortly`,
    },
    log,
    pki && authority ? tlsFrontDoorSecurity(pki, authority) : PLAINTEXT,
  );
  leadership.onLeaderChange((leader) => {
    forwarder.leaderChanged();
    log.info('cluster leader', { leader: leader ?? 'none' });
  });

  // The front door: every call, health checks and reflection included, is the leader's to answer (a health
  // check while no leader can be reached is answered NOT_SERVING by the door itself: forwarder.ts).
  const secure = pki ? secureFrontDoor(pki, log) : undefined;
  const server: http2.Http2Server | http2.Http2SecureServer = secure?.server ?? http2.createServer();
  server.on('stream', forwarder.onStream);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  const { host, port: wanted } = parseAddress(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(wanted, host, () => resolve());
  });
  const address = formatAddress({ host, port: (server.address() as net.AddressInfo).port });
  const ttlSeconds = Math.ceil(etcd.leaseTtlMs / 1000);
  const registration = registerMember(
    client,
    prefix,
    { host: options.host, address, peer: etcd.peerListen, version, startedUnixMs: Date.now() },
    ttlSeconds,
    log,
  );
  // This host's duty, whoever leads: its load reaches the leader's start gate through etcd.
  const hostLoad = new HostLoadMonitor({
    sink: publishHostLoad(registration, prefix, options.host),
    intervalMs: () => options.policy.reportIntervalMs,
    collector: new SystemLoadCollector({ clock }),
    clock,
    log,
  });
  hostLoad.start();
  // And its placement: the leader resolves names and counts migrations with every host's.
  const placementLog = log.child({ component: 'placement' });
  const placement = new PlacementMonitor(placementSource(options.placement, placementLog), options.host, placementLog);
  const published = publishPlacement(registration, prefix, options.host, placementLog);
  placement.onChange((vms) => published.placed(placement.sourceKind, vms));
  placement.attach(published.migrations);
  try {
    await placement.start();
  } catch (e) {
    hostLoad.stop();
    await registration.stop();
    server.close();
    client.close();
    throw e;
  }
  // And its hypervisor jobs: planned by the leader, run here at the leader's slots, through the front door.
  const jobs = runMemberJobs({
    options,
    address,
    client,
    registration,
    prefix,
    pki,
    identityOf: (vm) => placement.identityOf(vm),
    clock,
    log,
  });
  leadership.onLeaderChange(() => jobs.leaderChanged());
  leadership.start();

  let stopping: Promise<{ forced: boolean }> | undefined;
  return {
    address,
    leadership: () => ({ leader: leadership.leader, leading: leadership.isLeader }),
    stop: () =>
      (stopping ??= (async () => {
        hostLoad.stop();
        // The runs end first (SIGTERM), while their release can still reach the leader through the front door.
        await jobs.stop();
        await Promise.all([leadership.stop(), registration.stop(), placement.stop()]);
        await transition;
        // Open calls end UNAVAILABLE (their callers go to another member), then the connections close.
        forwarder.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const session of sessions) session.close();
        const bound = setTimeout(() => sessions.forEach((s) => s.destroy()), 2_000);
        await closed;
        clearTimeout(bound);
        stopSharing();
        client.close();
        authority?.close();
        return { forced: false };
      })()),
    reloadCertificates: () => {
      secure?.reload();
      serving?.reloadCertificates();
    },
  };
}

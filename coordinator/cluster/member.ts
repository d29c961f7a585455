/**
 * A coordinator in cluster mode (coordinator.yaml `etcd:`): one member per host. Each member campaigns for
 * the lead through etcd and forwards every call it receives to the leader (forwarder.ts). The member that
 * is elected loads the state from etcd and serves the coordination — the same server as a single host's
 * (server.ts), over the leader's fenced etcd store — on its peer address, until it is deposed or a commit
 * fails; then it stops serving at once and campaigns again.
 *
 * With pki (docs/cluster.md): the front door serves mutual TLS and authenticates each caller
 * (rpc/auth-interceptor.ts's frontDoorInterceptor), the forwarder calls the leader with this member's
 * certificate (member.pem) and the caller's identity, the leader serves its peer address with the same
 * mutual TLS, and the CA's certificate records (revocations included) are shared through etcd (shared-pki.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { HealthImplementation } from 'grpc-health-check';
import * as fs from 'node:fs';
import { SERVER_OPTIONS, parseAddress, tlsCredentials } from '../../common/client/connection';
import { type Clock, systemClock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import { headroomV1, packageDefinition } from '../../proto';
import type { CoordinatorOptions, EtcdOptions } from '../config';
import { type RunningServer, startServer } from '../server';
import { version } from '../../package.json';
import { clusterInfo, endpointUrl, registerMember } from './cluster-view';
import { EtcdStore } from './etcd-store';
import { feedHostLoads, publishHostLoad } from './host-loads';
import { HostLoadMonitor } from '../service/host-load-monitor';
import { SystemLoadCollector } from '../../common/backup-run/load-collector';
import { Forwarder } from './forwarder';
import { Leadership } from './leadership';
import { sharePki } from './shared-pki';
import { Authority } from '../pki/authority';
import { pkiFiles } from '../pki/state-dir';
import { frontDoorInterceptor } from '../rpc/auth-interceptor';
import { reloadable } from '../rpc/server-security';
import { etcdTls } from './etcd-tls';

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
  const client = new Etcd3({
    hosts: etcd.endpoints.map(endpointUrl),
    dialTimeout: 2_000,
    faultHandling: { host: () => noop, global: noop },
    ...etcdTls(etcd),
  });
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
                info: () => clusterInfo(client, prefix, etcd.cluster, etcd.endpoints),
                feedHostLoads: (coordinator) => feedHostLoads(client, prefix, coordinator, clock, log),
                ...(authority ? { authority } : {}),
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
    // Read at each new leader: a member certificate replaced on disk is presented from then on.
    pki
      ? (leader) =>
          tlsCredentials(leader, {
            ca: fs.readFileSync(pki.caCert),
            cert: fs.readFileSync(pki.memberCert),
            key: fs.readFileSync(pki.memberKey),
          })
      : () => grpc.credentials.createInsecure(),
  );
  leadership.onLeaderChange((leader) => {
    forwarder.leaderChanged();
    log.info('cluster leader', { leader: leader ?? 'none' });
  });

  const frontDoor = pki
    ? reloadable({ ca: pki.caCert, cert: pki.serverCert, key: pki.serverKey }, log, () => {})
    : { credentials: grpc.ServerCredentials.createInsecure(), reload: () => false };
  const server = new grpc.Server({
    ...SERVER_OPTIONS,
    interceptors: authority ? [frontDoorInterceptor({ log, authority })] : [],
  });
  for (const service of [
    headroomV1.TokenService,
    headroomV1.AgentService,
    headroomV1.AdminService,
    headroomV1.PkiService,
  ]) {
    const { definition, handlers } = forwarder.service(service.service);
    server.addService(definition, handlers);
  }
  // The member's own health: serving while a leader is known to send calls to.
  const health = new HealthImplementation({ '': 'NOT_SERVING' });
  const tellHealth = () => health.setStatus('', leadership.leader ? 'SERVING' : 'NOT_SERVING');
  leadership.onLeaderChange(tellHealth);
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, frontDoor.credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const { host } = parseAddress(options.listen);
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
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
  leadership.start();

  let stopping: Promise<{ forced: boolean }> | undefined;
  return {
    address,
    leadership: () => ({ leader: leadership.leader, leading: leadership.isLeader }),
    stop: () =>
      (stopping ??= (async () => {
        hostLoad.stop();
        await Promise.all([leadership.stop(), registration.stop()]);
        await transition;
        forwarder.close();
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        stopSharing();
        client.close();
        authority?.close();
        return { forced: false };
      })()),
    reloadCertificates: () => {
      if (frontDoor.reload()) log.info('front door certificates reloaded: new connections get them');
      serving?.reloadCertificates();
    },
  };
}

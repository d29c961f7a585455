/**
 * What the leader tells about the cluster (AdminService.GetCluster, `headroomctl status`): the members,
 * each registered in etcd under `members/<host>` for as long as its process lives (a lease of its own),
 * who leads (the first election key), and each etcd endpoint's health as etcd reports it (its status).
 */
import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type * as v1 from '../../proto/generated/headroom/v1';

export interface MemberRecord {
  host: string;
  address: string;
  peer: string;
  version: string;
  startedUnixMs: number;
}

const HEALTH_TIMEOUT_MS = 2_000;

/** An endpoint as configured (`127.0.0.1:2379` or a URL) as a base URL. */
export function endpointUrl(endpoint: string): string {
  return /^[a-z]+:\/\//.test(endpoint) ? endpoint.replace(/\/$/, '') : `http://${endpoint}`;
}

export interface Registration {
  /** Puts a key that lives as long as this member's registration (its host's load). */
  put(key: string, value: string): Promise<void>;
  /** Called each time the member is registered again with a new lease (its keys went with the old one). */
  onRegistered(listener: () => void): void;
  stop(): Promise<void>;
}

/**
 * Registers this member under `members/<host>` with a lease that lives as long as the process keeps it
 * alive; registers again when the lease is lost (etcd was out of reach past its TTL).
 */
export function registerMember(
  client: Etcd3,
  prefix: string,
  record: MemberRecord,
  ttlSeconds: number,
  log: Logger,
): Registration {
  let lease: Lease | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let registered = 0;
  const listeners: (() => void)[] = [];
  const register = () => {
    if (stopped) return;
    const current = client.lease(ttlSeconds, { autoKeepAlive: true });
    lease = current;
    current.on('lost', () => {
      if (lease !== current || stopped) return;
      retry = setTimeout(register, 1_000);
    });
    current
      .put(`${prefix}members/${record.host}`)
      .value(JSON.stringify(record))
      .exec()
      .then(() => {
        if (registered++ > 0) for (const l of listeners) l();
      })
      .catch((error: Error) => {
        log.debug('cluster: cannot register this member yet', { error });
        void current.revoke().catch(() => undefined);
        if (lease === current && !stopped) retry = setTimeout(register, 1_000);
      });
  };
  register();
  return {
    async put(key, value) {
      if (!lease) throw new Error('this member is not registered in etcd yet');
      await lease.put(key).value(value).exec();
    },
    onRegistered: (listener) => listeners.push(listener),
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await lease?.revoke().catch(() => undefined);
    },
  };
}

/**
 * One endpoint's health as etcd itself reports it (Maintenance.Status, over the same client settings as the
 * member's, so TLS to etcd works): healthy while it knows a raft leader; its version and database size.
 */
async function endpointHealth(endpoint: string, connect: (endpoint: string) => Etcd3): Promise<v1.EtcdEndpoint> {
  const client = connect(endpoint);
  try {
    const status = await client.maintenance.status({ deadline: Date.now() + HEALTH_TIMEOUT_MS });
    const healthy = status.leader !== '0';
    return {
      endpoint,
      healthy,
      error: healthy ? '' : 'no raft leader',
      raftLeader: healthy && status.header.member_id === status.leader,
      version: status.version,
      dbSizeBytes: Number(status.dbSize),
    };
  } catch (e) {
    return { endpoint, healthy: false, error: (e as Error).message, raftLeader: false, version: '', dbSizeBytes: 0 };
  } finally {
    client.close();
  }
}

/** `connect` makes a client of one endpoint, with the member's etcd settings. */
export async function clusterInfo(
  client: Etcd3,
  prefix: string,
  name: string,
  endpoints: readonly string[],
  connect: (endpoint: string) => Etcd3,
): Promise<v1.ClusterInfo> {
  const [members, first, etcd] = await Promise.all([
    client.getAll().prefix(`${prefix}members/`).strings(),
    client.getAll().prefix(`${prefix}election/leader/`).sort('Create', 'Ascend').limit(1).exec(),
    Promise.all(endpoints.map((e) => endpointHealth(e, connect))),
  ]);
  const leaderPeer = first.kvs[0]?.value.toString();
  return {
    clustered: true,
    name,
    members: Object.values(members)
      .map((v) => JSON.parse(v) as MemberRecord)
      .sort((a, b) => a.host.localeCompare(b.host))
      .map((m) => ({ ...m, startedUnixMs: m.startedUnixMs, leader: m.peer === leaderPeer })),
    etcd,
  };
}

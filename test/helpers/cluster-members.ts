/**
 * Coordinator members of a cluster (coordinator.yaml `etcd:`) as real processes on loopback, for the
 * cluster tests and benchmark: each with its own front-door and peer port and host name, over the etcd
 * cluster of etcd-cluster.ts. A member can be SIGKILLed and restarted on the same ports, SIGSTOPped and
 * resumed; which one leads is read from etcd, as the members themselves read it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { type RunningCoordinator, TEST_START_POLICY, startCoordinator, tempDir } from './coordinator-process';
import { freePorts } from './ports';
import type { EtcdClientTls } from './etcd-cluster';
import { etcdTls as coordinatorEtcdTls } from '../../coordinator/cluster/etcd-tls';

export interface MemberOptions {
  /** etcd's client URLs. */
  endpoints: readonly string[];
  members?: number;
  /** The election lease, e.g. '2s'. */
  electionTtl?: string;
  /** Extra coordinator flags, e.g. ['--lease-ttl', '6s']. */
  args?: string[];
  /** Extra coordinator.yaml text, or each member's own (e.g. its host's placement). */
  config?: string | ((m: Member) => string);
  /** Flags of one member only, e.g. its own `--pki-dir`. */
  memberArgs?(m: Member): string[];
  /** TLS to etcd (the etcd helper's `tls`): the members' `etcd.tls`, and this helper's own client's. */
  etcdTls?: EtcdClientTls;
}

export interface Member {
  index: number;
  host: string;
  /** The front door, 127.0.0.1:PORT. */
  address: string;
  /** Where it serves the coordination when it leads. */
  peer: string;
  /** The running process, or undefined while killed. */
  running?: RunningCoordinator;
  stopped: boolean;
  /** Everything each of its processes logged so far, this one included: kept when a test fails. */
  logs(): string;
}

export interface ClusterMembers {
  readonly members: readonly Member[];
  /** The cluster's name (its key prefix is /headroom/<name>/). */
  readonly cluster: string;
  /** Every member's front door, as a list clients take: `127.0.0.1:P1,127.0.0.1:P2,…`. */
  readonly addressList: string;
  /** The member whose peer address the first election key holds, or undefined while none leads. */
  leader(): Promise<Member | undefined>;
  /** Waits until a member leads (and serves), and returns it. */
  waitLeader(timeoutMs?: number, not?: Member): Promise<Member>;
  kill(m: Member): Promise<void>;
  restart(m: Member): Promise<void>;
  stop(m: Member): void;
  cont(m: Member): void;
  /** Called with a member's new pid at each start (e.g. to put it in an EtcdCut's group). */
  onStart(listener: (m: Member, pid: number) => void): void;
  stopAll(): Promise<void>;
  /** Writes every member's logs() to `dir` (default: a new temp directory) as member-N.log; returns it. */
  keepLogs(dir?: string): string;
  client: Etcd3;
}

export async function startMembers(options: MemberOptions): Promise<ClusterMembers> {
  const n = options.members ?? 3;
  const cluster = `test-${process.pid}-${Date.now().toString(36)}`;
  const dir = tempDir('headroom-members-');
  const ports = await freePorts(2 * n);
  // What the processes killed so far logged, per member.
  const pastLogs = new Map<number, string>();
  const members: Member[] = Array.from({ length: n }, (_, i) => ({
    index: i,
    host: `member-h${i}`,
    address: `127.0.0.1:${ports[2 * i]}`,
    peer: `127.0.0.1:${ports[2 * i + 1]}`,
    stopped: false,
    logs(this: Member) {
      return (pastLogs.get(i) ?? '') + (this.running?.log() ?? '');
    },
  }));
  const listeners: ((m: Member, pid: number) => void)[] = [];
  const etcdTls = options.etcdTls && { ...options.etcdTls, serverName: 'localhost' };
  const client = new Etcd3({ hosts: [...options.endpoints], ...(etcdTls ? coordinatorEtcdTls({ tls: etcdTls }) : {}) });
  const candidates = `/headroom/${cluster}/election/leader/`;

  const start = async (m: Member) => {
    const config = path.join(dir, `member-${m.index}.yaml`);
    fs.writeFileSync(
      config,
      `${TEST_START_POLICY}etcd:\n  endpoints: [${options.endpoints.join(', ')}]\n  cluster: ${cluster}\n` +
        `  peerListen: ${m.peer}\n  leaseTtl: ${options.electionTtl ?? '2s'}\n` +
        (etcdTls ? `  tls: ${JSON.stringify(etcdTls)}\n` : '') +
        (typeof options.config === 'function' ? options.config(m) : (options.config ?? '')),
    );
    m.running = await startCoordinator({
      listen: m.address,
      host: m.host,
      args: ['--config', config, ...(options.args ?? []), ...(options.memberArgs?.(m) ?? [])],
      env: { HEADROOM_LOG: 'info' },
    });
    m.stopped = false;
    for (const l of listeners) l(m, m.running.process.pid!);
  };
  await Promise.all(members.map(start));

  const leader = async () => {
    const result = await client.getAll().prefix(candidates).sort('Create', 'Ascend').limit(1).exec();
    const peer = result.kvs[0]?.value.toString();
    return members.find((m) => m.peer === peer);
  };

  return {
    members,
    cluster,
    addressList: members.map((m) => m.address).join(','),
    leader,
    async waitLeader(timeoutMs = 60_000, not?: Member) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const m = await leader().catch(() => undefined);
        // Serving: its log says so after it loaded the state and bound its peer address.
        if (m && m !== not && m.running && /leading: the coordination is served/.test(lastLines(m.running.log())))
          return m;
        if (Date.now() > until) throw new Error(`no member led within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async kill(m) {
      await m.running?.kill();
      pastLogs.set(m.index, m.logs());
      m.running = undefined;
    },
    restart: start,
    stop(m) {
      m.running?.process.kill('SIGSTOP');
      m.stopped = true;
    },
    cont(m) {
      m.running?.process.kill('SIGCONT');
      m.stopped = false;
    },
    onStart: (l) => listeners.push(l),
    keepLogs(dir = tempDir('headroom-members-logs-')) {
      for (const m of members) fs.writeFileSync(path.join(dir, `member-${m.index}.log`), m.logs());
      return dir;
    },
    async stopAll() {
      for (const m of members) if (m.stopped) m.running?.process.kill('SIGCONT');
      await Promise.all(members.map((m) => m.running?.stop()));
      client.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    client,
  };
}

/** The log since the member's last election news: whether it serves now, not whether it once did. */
function lastLines(log: string): string {
  const i = Math.max(log.lastIndexOf('elected leader'), log.lastIndexOf('no longer the leader'));
  return i < 0 ? '' : log.slice(i);
}

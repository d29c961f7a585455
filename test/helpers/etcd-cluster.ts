/**
 * A real etcd cluster for the cluster tests and benchmarks: N members of Debian's etcd 3.4 on 127.0.0.1,
 * each with its own client and peer port and its own data directory, and the faults those tests inflict on
 * it (SIGKILL and restart on the same data, SIGSTOP/SIGCONT, loss of quorum). A member can also listen on
 * extra addresses (a network namespace's host side, test/helpers/netns.ts), so that a process inside the
 * namespace reaches it. Members are SIGKILLed and their data deleted at exit, or on SIGINT/SIGTERM, even
 * if cleanup() is never called.
 *
 * Settings (each documented where it is set): raft timing for a busy 2-core machine, pre-vote, logs in one
 * file per member beside its data. `--max-txn-ops` is etcd's default (128), the limit the cluster store
 * must respect in production too, so a test that passes here does not lean on a raised limit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../common/util/log';
import { initPki } from '../../coordinator/pki/init';
import { pkiFiles } from '../../coordinator/pki/state-dir';
import { freePorts } from './ports';
import { reapAtExit } from './reaper';
import { requireTool } from './require-tool';
import { waitFor } from './wait';

export const ETCD = '/usr/bin/etcd';

export interface EtcdClusterOptions {
  /** How many members; default 3. */
  members?: number;
  /**
   * Addresses each member also serves clients on, with the same port as on 127.0.0.1 (e.g. a Partition's
   * hostAddress). They must exist before the cluster starts. Default none.
   */
  extraClientAddresses?: string[];
  /**
   * Raft heartbeat, ms; default 50 (etcd's is 100). Together with the election timeout: how fast a new
   * etcd leader is elected after a kill, which the cluster tests do often.
   */
  heartbeatIntervalMs?: number;
  /**
   * Raft election timeout, ms; default 1000 (etcd's too). Twenty heartbeats: a member starved of CPU for
   * most of a second on a busy machine does not start an election, and a killed leader is replaced in
   * about 1–2 s.
   */
  electionTimeoutMs?: number;
  /** How long start() and restart() wait for a member to report healthy, ms; default 30 000. */
  healthyTimeoutMs?: number;
  /**
   * Serve clients over TLS and ask them for a certificate of the cluster's own CA (`--client-cert-auth`),
   * as a production etcd would; `tls` then names the CA and a client identity. Peers stay plaintext, on
   * loopback. Default false.
   */
  tls?: boolean;
}

/** PEM files for a client of a TLS cluster: the CA to trust, and a client certificate of that CA. */
export interface EtcdClientTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** etcd's own log (stdout and stderr). */
  logFile: string;
  /** The running process, or undefined while the member is killed. */
  process?: ChildProcess;
  /** True between stop() and cont(). */
  stopped: boolean;
}

export interface EtcdCluster {
  /** Every member's client URL on 127.0.0.1 (`http://127.0.0.1:PORT`, https with tls), killed members included. */
  readonly endpoints: string[];
  /** With the tls option: what a client needs. */
  readonly tls?: EtcdClientTls;
  readonly members: readonly EtcdMember[];
  /** Every member's client URL on one of the extra client addresses. */
  endpointsOn(address: string): string[];
  /** The pids of the running members, by index (undefined while killed). */
  pids(): (number | undefined)[];
  /** SIGKILL member i and wait until it is gone. */
  kill(i: number): Promise<void>;
  /** Start member i again on its data directory and ports; waits until it is healthy unless told not to. */
  restart(i: number, options?: { wait?: boolean }): Promise<void>;
  /** SIGSTOP member i: it holds its connections but answers nothing, as a hung process would. */
  stop(i: number): void;
  /** SIGCONT member i. */
  cont(i: number): void;
  /** Index of the member that is raft leader now, from the members' /metrics; undefined while there is none. */
  leader(): Promise<number | undefined>;
  /** Waits until every running, not stopped member says it is healthy (it has a leader and serves reads). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /**
   * Kills all but the first floor(n/2) members (members 1 and 2 of 3): writes and linearizable reads can
   * no longer succeed. Returns the function that restarts them and waits for the cluster to be healthy again.
   */
  withoutQuorum(): Promise<() => Promise<void>>;
  /** SIGKILLs every member (SIGCONT first is not needed: a stopped process dies of SIGKILL). Safe twice. */
  stopAll(): Promise<void>;
  /** stopAll(), then deletes the data directories and logs. Safe twice. */
  cleanup(): Promise<void>;
}

/** GET `url` (http, or https as the client `tls` says) within 2 s: the body, or undefined on any failure. */
function get(url: string, tls: EtcdClientTls | undefined): Promise<string | undefined> {
  const options = tls
    ? {
        ca: fs.readFileSync(tls.caFile),
        cert: fs.readFileSync(tls.certFile),
        key: fs.readFileSync(tls.keyFile),
        // No SNI for an IP address (RFC 6066; Node warns with DEP0123).
        servername: '',
      }
    : {};
  return new Promise((resolve) => {
    const req = (tls ? https : http).get(url, { ...options, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Whether the member at `endpoint` answers its /health with true (it has a leader and serves a read). */
async function healthy(endpoint: string, tls: EtcdClientTls | undefined): Promise<boolean> {
  const body = await get(`${endpoint}/health`, tls);
  try {
    return body !== undefined && (JSON.parse(body) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Whether the member at `endpoint` is raft leader now, from its Prometheus metrics. */
async function isLeader(endpoint: string, tls: EtcdClientTls | undefined): Promise<boolean> {
  return /^etcd_server_is_leader 1$/m.test((await get(`${endpoint}/metrics`, tls)) ?? '');
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts the cluster and waits until every member is healthy. Throws naming the Debian package when etcd
 * is missing, and with the members' log tails when the cluster does not come up. Ports are picked free just
 * before etcd binds them; if another process takes one in between, the start is tried again on new ports.
 */
export async function startEtcdCluster(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  requireTool(ETCD, 'etcd-server');
  for (let attempt = 1; ; attempt++) {
    const cluster = createCluster(options, await freePorts(2 * (options.members ?? 3)));
    try {
      await cluster.start();
      return cluster;
    } catch (e) {
      await cluster.cleanup();
      if (attempt >= 3 || !/address already in use/.test((e as Error).message)) throw e;
    }
  }
}

function createCluster(o: EtcdClusterOptions, ports: number[]): EtcdCluster & { start(): Promise<void> } {
  const count = o.members ?? 3;
  const heartbeatMs = o.heartbeatIntervalMs ?? 50;
  const electionMs = o.electionTimeoutMs ?? 1_000;
  const healthyTimeoutMs = o.healthyTimeoutMs ?? 30_000;
  const extra = o.extraClientAddresses ?? [];
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-etcd-'));
  const token = path.basename(root);
  const members: EtcdMember[] = Array.from({ length: count }, (_, i) => ({
    name: `m${i}`,
    clientPort: ports[2 * i],
    peerPort: ports[2 * i + 1],
    dataDir: path.join(root, `m${i}.etcd`),
    logFile: path.join(root, `m${i}.log`),
    stopped: false,
  }));
  const scheme = o.tls ? 'https' : 'http';
  const pki = pkiFiles(path.join(root, 'pki'));
  const tls = o.tls ? { caFile: pki.caCert, certFile: pki.adminCert, keyFile: pki.adminKey } : undefined;
  const endpointOf = (m: EtcdMember, address = '127.0.0.1') => `${scheme}://${address}:${m.clientPort}`;
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  // At exit without cleanup() (a test that threw in before(), Ctrl-C): the same, synchronously.
  const unregister = reapAtExit(() => {
    members.forEach((m) => m.process?.kill('SIGKILL'));
    fs.rmSync(root, { recursive: true, force: true });
  });

  const launch = (i: number) => {
    const m = members[i];
    const clientUrls = ['127.0.0.1', ...extra].map((a) => endpointOf(m, a)).join(',');
    const tlsFlags = o.tls
      ? ['--cert-file', pki.serverCert, '--key-file', pki.serverKey, '--trusted-ca-file', pki.caCert]
      : [];
    const log = fs.openSync(m.logFile, 'a');
    // On a restart the data directory's WAL wins: the --initial-cluster* flags are ignored and the member
    // rejoins with its old identity.
    const child = spawn(
      ETCD,
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        clientUrls,
        '--advertise-client-urls',
        endpointOf(m),
        ...tlsFlags,
        ...(o.tls ? ['--client-cert-auth'] : []),
        '--listen-peer-urls',
        `http://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${m.peerPort}`,
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-token',
        token,
        '--initial-cluster-state',
        'new',
        '--heartbeat-interval',
        String(heartbeatMs),
        '--election-timeout',
        String(electionMs),
        // A member that comes back (restart, SIGCONT) first asks whether it could win before it bumps the
        // term, so it does not depose a healthy leader: the faults the tests inject stay one fault each.
        '--pre-vote',
        '--logger',
        'zap',
        '--log-outputs',
        'stderr',
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    m.process = child;
    m.stopped = false;
  };

  const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

  const kill = async (i: number) => {
    const child = members[i].process;
    if (!child) return;
    if (!exited(child)) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
    members[i].process = undefined;
    members[i].stopped = false;
  };

  /** Waits for member i's health; fails at once, with its log, if it exits. */
  const waitMemberHealthy = async (i: number, timeoutMs: number) => {
    const m = members[i];
    await waitFor(
      async () => {
        if (!m.process || exited(m.process)) {
          throw new Error(`etcd member ${m.name} exited (${m.process?.exitCode ?? m.process?.signalCode})`);
        }
        return healthy(endpointOf(m), tls);
      },
      timeoutMs,
      `etcd member ${m.name} healthy at ${endpointOf(m)}`,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${m.name}'s log:\n${tail(m.logFile)}`);
    });
  };

  const waitHealthy = async (timeoutMs = healthyTimeoutMs) => {
    await Promise.all(members.map((m, i) => (m.process && !m.stopped ? waitMemberHealthy(i, timeoutMs) : undefined)));
  };

  let removed = false;
  const stopAll = async () => {
    await Promise.all(members.map((_, i) => kill(i)));
  };

  const cluster = {
    endpoints: members.map((m) => endpointOf(m)),
    ...(tls ? { tls } : {}),
    members,
    endpointsOn: (address: string) => {
      if (!extra.includes(address)) throw new Error(`etcd does not listen on ${address}: not in extraClientAddresses`);
      return members.map((m) => endpointOf(m, address));
    },
    pids: () => members.map((m) => m.process?.pid),
    async start() {
      if (o.tls) {
        // The project's own PKI code: a CA, a server certificate for every address served, a client identity.
        await initPki({
          dir: pki.dir,
          serverNames: ['127.0.0.1', 'localhost', ...extra],
          host: 'etcd-test',
          admin: 'etcd-client',
          log: createLogger({ level: 'silent' }),
        });
      }
      members.forEach((_, i) => launch(i));
      await waitHealthy();
    },
    kill,
    async restart(i: number, { wait = true }: { wait?: boolean } = {}) {
      const running = members[i].process;
      if (running && !exited(running)) throw new Error(`etcd member ${members[i].name} is running: kill it first`);
      launch(i);
      if (wait) await waitMemberHealthy(i, healthyTimeoutMs);
    },
    stop(i: number) {
      members[i].process?.kill('SIGSTOP');
      members[i].stopped = true;
    },
    cont(i: number) {
      members[i].process?.kill('SIGCONT');
      members[i].stopped = false;
    },
    async leader() {
      const leading = await Promise.all(
        members.map((m) => (m.process && !m.stopped ? isLeader(endpointOf(m), tls) : false)),
      );
      const i = leading.indexOf(true);
      return i < 0 ? undefined : i;
    },
    waitHealthy,
    async withoutQuorum() {
      // Quorum is a majority: with floor(n/2) members left, there is none.
      const victims = members.map((_, i) => i).slice(Math.floor(count / 2));
      await Promise.all(victims.map((i) => kill(i)));
      return async () => {
        for (const i of victims) await cluster.restart(i, { wait: false });
        await waitHealthy();
      };
    },
    stopAll,
    async cleanup() {
      await stopAll();
      if (removed) return;
      removed = true;
      unregister();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
  return cluster;
}

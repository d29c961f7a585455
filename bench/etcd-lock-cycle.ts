/**
 * The plain etcd lock cycle that the cluster benchmark (issue 17) sets Headroom's durable acquire+release
 * against: with the Node `etcd3` client, lease grant → create-if-absent transaction on the caller's key,
 * attached to the lease → delete the key → lease revoke. Four round trips, each one raft commit, which is
 * what a lock service built directly on etcd pays per grant and release.
 *
 * Closed loop: C callers run cycles back to back for a fixed window after a warm-up. Each caller has its own
 * key, so no transaction ever finds its key taken: like Headroom's GUEST tokens on distinct VMs, the figure
 * is etcd's commit path, not contention. One client (one channel per member) carries every caller, and
 * spreads the calls over the members given, as Headroom's clients talk to any member. `bench:etcd-lock`
 * runs it on a cluster of its own (bench/etcd-lock.ts); `bench:cluster` calls runEtcdLockCycles with the
 * endpoints of the etcd it already runs.
 */
import { Etcd3 } from 'etcd3';
import { type Percentiles, percentiles } from './grant-report';
import { cpuMs, machineCpuMs } from './proc-stats';

export interface LockCycleOptions {
  /** etcd client URLs (http://127.0.0.1:2379 …). */
  endpoints: string[];
  /** Concurrent callers of each phase, one phase per entry, in order. Default [1, 50, 200]. */
  concurrencies?: number[];
  /** Each phase's measured window, ms. Default 10 000. */
  durationMs?: number;
  /** Cycles run before each window and not counted (connections, JIT, etcd's caches), ms. Default 2 000. */
  warmupMs?: number;
  /** The TTL each cycle's lease is granted with, s; never reached, as the cycle revokes it. Default 10. */
  leaseTtlSec?: number;
  /** Prefix of the callers' keys. Default `bench/etcd-lock/`. */
  keyPrefix?: string;
  /** The etcd members' pids, when they run on this machine: their CPU use in each window is reported. */
  memberPids?: number[];
  /** A line of progress per phase (default none). */
  progress?(line: string): void;
}

export interface LockCyclePhase {
  concurrency: number;
  durationMs: number;
  /** Cycles completed inside the window. */
  cycles: number;
  cyclesPerSec: number;
  /** One whole cycle (grant to revoke), ms: of the cycles completed inside the window. */
  cycleMs: Percentiles;
  /** Transactions that found their key already there: 0 unless a previous run's key outlived it. */
  conflicts: number;
  /** Failed cycles by error message (any phase of the cycle). */
  errors: { message: string; count: number }[];
  /** This process's CPU in the window, % of one core: the client's share of the machine. */
  clientCpuPercent: number;
  /** The members' CPU in the window, % of one core, summed (0 without memberPids). */
  etcdCpuPercent: number;
  /** The machine's busy CPU in the window, % of all cores. */
  machineBusyPercent: number;
}

/** Runs one closed-loop phase per concurrency on a client of `endpoints`; see the module header. */
export async function runEtcdLockCycles(o: LockCycleOptions): Promise<LockCyclePhase[]> {
  const client = new Etcd3({ hosts: o.endpoints });
  try {
    const phases: LockCyclePhase[] = [];
    for (const concurrency of o.concurrencies ?? [1, 50, 200]) {
      const phase = await runPhase(client, o, concurrency);
      o.progress?.(formatLockCyclePhase(phase));
      phases.push(phase);
    }
    return phases;
  } finally {
    client.close();
  }
}

async function runPhase(client: Etcd3, o: LockCycleOptions, concurrency: number): Promise<LockCyclePhase> {
  const durationMs = o.durationMs ?? 10_000;
  const ttl = o.leaseTtlSec ?? 10;
  const prefix = o.keyPrefix ?? 'bench/etcd-lock/';
  const windowStart = performance.now() + (o.warmupMs ?? 2_000);
  const windowEnd = windowStart + durationMs;
  const samplesUs: number[] = [];
  const errors = new Map<string, number>();
  let conflicts = 0;

  const cycle = async (key: Buffer) => {
    const { ID } = await client.leaseClient.leaseGrant({ TTL: ttl });
    const { succeeded } = await client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from('held'), lease: ID } }],
      failure: [],
    });
    if (!succeeded) conflicts++;
    else await client.kv.deleteRange({ key });
    await client.leaseClient.leaseRevoke({ ID });
  };

  const caller = async (i: number) => {
    const key = Buffer.from(`${prefix}${concurrency}/${i}`);
    while (performance.now() < windowEnd) {
      const start = performance.now();
      try {
        await cycle(key);
      } catch (e) {
        const message = (e as Error).message.split('\n')[0];
        errors.set(message, (errors.get(message) ?? 0) + 1);
        // An open circuit breaker fails at once: without a pause the loop would never yield to timers.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      const end = performance.now();
      if (end >= windowStart && end < windowEnd) samplesUs.push((end - start) * 1000);
    }
  };

  // The window's CPU figures are read when it opens and closes, not at the phase's ends.
  const marks: { wall: number; client: number; etcd: number; machine: ReturnType<typeof machineCpuMs> }[] = [];
  const mark = () => {
    const usage = process.cpuUsage();
    marks.push({
      wall: performance.now(),
      client: (usage.user + usage.system) / 1000,
      etcd: (o.memberPids ?? []).reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0),
      machine: machineCpuMs(),
    });
  };
  const timers = [windowStart, windowEnd].map((at) => setTimeout(mark, at - performance.now()));
  await Promise.all(Array.from({ length: concurrency }, (_, i) => caller(i)));
  timers.forEach(clearTimeout);
  // The last caller may stop just past the window's end before its timer has run: then the end is now.
  if (marks.length < 2) mark();

  const [from, to] = [marks[0], marks[marks.length - 1]];
  const wallMs = to.wall - from.wall;
  const cycleMs = percentiles(samplesUs);
  return {
    concurrency,
    durationMs,
    cycles: cycleMs.count,
    cyclesPerSec: cycleMs.count / (durationMs / 1000),
    cycleMs,
    conflicts,
    errors: [...errors].map(([message, count]) => ({ message, count })),
    clientCpuPercent: (100 * (to.client - from.client)) / wallMs,
    etcdCpuPercent: (100 * (to.etcd - from.etcd)) / wallMs,
    machineBusyPercent: (100 * (to.machine.busy - from.machine.busy)) / (to.machine.total - from.machine.total),
  };
}

/** One phase as one line: callers, cycles/s, p50/p99/max latency, CPU, errors. */
export function formatLockCyclePhase(p: LockCyclePhase): string {
  const errors = p.errors.reduce((sum, e) => sum + e.count, 0);
  return (
    `c=${String(p.concurrency).padEnd(4)} ${p.cyclesPerSec.toFixed(0).padStart(6)} cycles/s  ` +
    `p50 ${p.cycleMs.p50.toFixed(2).padStart(7)} ms  p99 ${p.cycleMs.p99.toFixed(2).padStart(7)} ms  ` +
    `max ${p.cycleMs.max.toFixed(1).padStart(7)} ms  client CPU ${p.clientCpuPercent.toFixed(0)}%  ` +
    `etcd CPU ${p.etcdCpuPercent.toFixed(0)}%  machine ${p.machineBusyPercent.toFixed(0)}% busy` +
    (errors || p.conflicts ? `  errors ${errors}, conflicts ${p.conflicts}` : '')
  );
}

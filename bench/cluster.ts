/**
 * `npm run bench:cluster`: the cluster (issue 17) on this machine — a 3-member etcd and 3 coordinator members
 * on loopback — measured three ways. Prints, never fails on figures:
 *  1. leader failover: from the SIGKILL of the leader to the first grant by the new one (asked through a
 *     surviving member's front door), p50 and max over --kills kills, while a holder renews one token
 *     throughout: whether it lost it;
 *  2. the durable acquire+release cycle in closed loop at 1, 50 and 200 concurrent callers: the cluster, a
 *     single-host coordinator on SQLite (durability full) on this machine's disk, and the plain etcd lock
 *     cycle (bench/etcd-lock-cycle.ts) on the same etcd, all with the same client runtime (Node, this process);
 *  3. each member's and etcd member's RSS at the end.
 * Options: --kills N (default 10), --duration MS per phase (default 8000), --callers 1,50,200.
 */
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../common/client/connection';
import { systemClock } from '../common/util/clock';
import { Renewer } from '../common/client/lease-renewer';
import { createLogger } from '../common/util/log';
import { sleep } from '../common/util/backoff';
import type { v1 } from '../proto';
import { startMembers } from '../test/helpers/cluster-members';
import { startCoordinator, tempDir } from '../test/helpers/coordinator-process';
import { startEtcdCluster } from '../test/helpers/etcd-cluster';
import { acquireToken, describeError } from './grant-client';
import { type Percentiles, percentiles } from './grant-report';
import { formatLockCyclePhase, runEtcdLockCycles } from './etcd-lock-cycle';
import { rssBytes } from './proc-stats';

interface CyclePhase {
  concurrency: number;
  cyclesPerSec: number;
  cycleMs: Percentiles;
  errors: Map<string, number>;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const release = (c: Clients, t: v1.Token__Output) =>
  unary(c.token.Release.bind(c.token), {
    tokenId: t.tokenId,
    fencing: t.fencing,
    outcome: { success: true, exitCode: 0, durationMs: 0, bytes: 0, message: '' },
  });

/**
 * Closed loop: `concurrency` callers, each on its own VM (no contention: the figure is the commit path),
 * spread over `channels`, acquire and release back to back for `durationMs` after a 2 s warm-up.
 */
async function runCycles(
  channels: Clients[],
  concurrency: number,
  durationMs: number,
  tag: string,
): Promise<CyclePhase> {
  const latenciesUs: number[] = [];
  const errors = new Map<string, number>();
  let measuring = false;
  let stop = false;
  let n = 0;
  const caller = async (i: number) => {
    const c = channels[i % channels.length];
    const spec = { host: `bench-h${i % 3}`, vm: `${tag}-vm${i}` };
    while (!stop) {
      const t0 = process.hrtime.bigint();
      try {
        const token = await acquireToken(c, spec, `${tag}-${i}-${++n}`);
        await release(c, token);
        if (measuring) latenciesUs.push(Number(process.hrtime.bigint() - t0) / 1000);
      } catch (e) {
        const key = describeError(e);
        errors.set(key, (errors.get(key) ?? 0) + 1);
        await sleep(50);
      }
    }
  };
  const running = Array.from({ length: concurrency }, (_, i) => caller(i));
  await sleep(2_000);
  measuring = true;
  const from = Date.now();
  await sleep(durationMs);
  measuring = false;
  const wall = Date.now() - from;
  stop = true;
  await Promise.all(running);
  return { concurrency, cyclesPerSec: (latenciesUs.length * 1000) / wall, cycleMs: percentiles(latenciesUs), errors };
}

function formatCycles(label: string, p: CyclePhase): string {
  const errors = [...p.errors].map(([k, v]) => `${k}×${v}`).join(', ');
  return (
    `  ${label.padEnd(18)} c=${String(p.concurrency).padEnd(4)} ${p.cyclesPerSec.toFixed(0).padStart(6)} cycles/s  ` +
    `p50 ${p.cycleMs.p50.toFixed(2).padStart(7)} ms  p99 ${p.cycleMs.p99.toFixed(2).padStart(7)} ms` +
    (errors ? `  errors: ${errors}` : '')
  );
}

const channelsTo = (addresses: string[]) =>
  addresses.map((a) => connect(a, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));

async function main(): Promise<void> {
  const kills = Number(option('kills', '10'));
  const durationMs = Number(option('duration', '8000'));
  const callers = option('callers', '1,50,200').split(',').map(Number);
  const log = createLogger({ level: 'silent' });
  console.log(
    `bench:cluster: 3 etcd members, 3 coordinator members on loopback; ${kills} kills; ${durationMs} ms per phase`,
  );

  const etcd = await startEtcdCluster();
  const members = await startMembers({
    endpoints: etcd.endpoints,
    electionTtl: '2s',
    args: ['--lease-ttl', '12s', '--max-guest', '1000'],
  });
  try {
    // 1. Failover.
    await members.waitLeader();
    const holderClients = connect(members.addressList, grpc.credentials.createInsecure());
    const held = await acquireToken(holderClients, { host: 'bench-hold', vm: 'held' }, 'bench-held');
    let lost: string | undefined;
    let renewals = 0;
    const renewer = new Renewer(
      { client: holderClients.token, clock: systemClock, log, onRenewed: () => renewals++ },
      held,
      systemClock.now(),
      (l) => (lost = l.message),
    );
    const failovers: number[] = [];
    for (let k = 0; k < kills; k++) {
      const leader = await members.waitLeader();
      const survivor = members.members.find((m) => m !== leader && m.running)!;
      const prober = connect(survivor.address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      const t0 = Date.now();
      await members.kill(leader);
      for (let attempt = 0; ; attempt++) {
        try {
          const t = await acquireToken(prober, { host: 'bench-h0', vm: `failover-${k}` }, `failover-${k}-${attempt}`);
          failovers.push(Date.now() - t0);
          await release(prober, t);
          break;
        } catch {
          await sleep(20);
        }
      }
      prober.close();
      await members.restart(leader);
      await sleep(1_000);
    }
    renewer.stop();
    await release(holderClients, held).catch(() => undefined);
    holderClients.close();
    const sorted = [...failovers].sort((a, b) => a - b);
    console.log('\nLeader failover (SIGKILL of the leader → first grant by the new one, through a surviving member):');
    console.log(
      `  ${failovers.length} kills: p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms; all: ${failovers.join(', ')} ms`,
    );
    console.log(
      `  a holder renewing one token (fencing ${held.fencing}) throughout: ${lost ? `LOST it (${lost})` : 'kept it'}, ${renewals} renewals`,
    );

    // 2. Cycles.
    console.log('\nDurable acquire+release cycle, closed loop (each caller on its own VM):');
    await members.waitLeader();
    const clusterChannels = channelsTo(members.members.map((m) => m.address));
    const single = await startCoordinator({
      dbPath: `${tempDir('headroom-bench-cluster-')}/headroom.db`,
      args: ['--max-guest', '1000'],
      env: { HEADROOM_LOG: 'warn' },
    });
    const singleChannels = channelsTo([single.address, single.address, single.address]);
    for (const c of callers) {
      console.log(formatCycles('cluster (etcd)', await runCycles(clusterChannels, c, durationMs, `cl${c}`)));
      console.log(formatCycles('single host SQLite', await runCycles(singleChannels, c, durationMs, `sq${c}`)));
      const [lock] = await runEtcdLockCycles({
        endpoints: etcd.endpoints,
        memberPids: etcd.pids().filter((pid): pid is number => pid !== undefined),
        concurrencies: [c],
        durationMs,
        warmupMs: 2_000,
      });
      console.log(`  ${'plain etcd lock'.padEnd(18)} ${formatLockCyclePhase(lock)}`);
    }
    for (const ch of [...clusterChannels, ...singleChannels]) ch.close();
    await single.stop();

    // 3. Memory.
    console.log('\nRSS at the end:');
    const mib = (pid: number | undefined) => {
      const rss = pid === undefined ? undefined : rssBytes(pid);
      return rss === undefined ? 'not running' : `${(rss / 2 ** 20).toFixed(0)} MiB`;
    };
    for (const m of members.members) console.log(`  member ${m.host}: ${mib(m.running?.process.pid)}`);
    etcd.pids().forEach((pid, i) => console.log(`  etcd member ${i}: ${mib(pid)}`));
  } finally {
    await members.stopAll();
    await etcd.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench:cluster failed: ${(e as Error).stack}`);
    process.exit(1);
  },
);

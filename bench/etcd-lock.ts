/**
 * `npm run bench:etcd-lock`: the plain etcd lock cycle (bench/etcd-lock-cycle.ts) at 1, 50 and 200
 * concurrent callers on a 3-member etcd of its own (test/helpers/etcd-cluster.ts, loopback, temp data
 * directories) or on the endpoints given. Prints cycles/s and latency per concurrency and each member's RSS
 * at the end; writes .bench/etcd-lock.json. Ctrl-C stops the members and deletes their data (the helper's reaper).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from '../common/util/duration';
import { formatBytes } from '../common/util/human';
import { startEtcdCluster } from '../test/helpers/etcd-cluster';
import { runEtcdLockCycles } from './etcd-lock-cycle';
import { ensureDirFor, rssBytes } from './proc-stats';

const USAGE = `Usage: npm run bench:etcd-lock -- [options]
  --concurrency LIST   callers of each phase, comma-separated (default 1,50,200)
  --duration DURATION  each phase's measured window (default 10s)
  --warmup DURATION    unmeasured cycles before each window (default 2s)
  --endpoints LIST     use this etcd (comma-separated client URLs) instead of starting a 3-member one
  --out FILE           the JSON results (default .bench/etcd-lock.json)`;

function options() {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '1,50,200' },
      duration: { type: 'string', default: '10s' },
      warmup: { type: 'string', default: '2s' },
      endpoints: { type: 'string' },
      out: { type: 'string', default: '.bench/etcd-lock.json' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const concurrencies = values.concurrency.split(',').map(Number);
  if (!concurrencies.every((c) => Number.isSafeInteger(c) && c > 0)) {
    throw new Error(`--concurrency: expected positive integers separated by commas, got ${values.concurrency}`);
  }
  return {
    concurrencies,
    durationMs: parseDuration(values.duration),
    warmupMs: parseDuration(values.warmup),
    endpoints: values.endpoints?.split(','),
    out: values.out,
  };
}

async function main(): Promise<void> {
  const o = options();
  const loadAvgBefore = os.loadavg();
  const cluster = o.endpoints ? undefined : await startEtcdCluster();
  const endpoints = o.endpoints ?? cluster!.endpoints;
  const memberPids = cluster?.pids().filter((p) => p !== undefined);
  console.log(
    `etcd lock cycle (lease grant → create-if-absent txn → delete → revoke), etcd3 client, ` +
      `${endpoints.length} members ${cluster ? 'started here' : 'given'}; ${os.cpus().length} cores, ` +
      `load average before ${loadAvgBefore.map((l) => l.toFixed(2)).join(' ')}; ` +
      `${o.durationMs / 1000}s per phase after ${o.warmupMs / 1000}s of warm-up`,
  );
  try {
    const phases = await runEtcdLockCycles({ ...o, endpoints, memberPids, progress: (line) => console.log(line) });
    const members = (memberPids ?? []).map((pid, i) => ({ member: i, pid, rssBytes: rssBytes(pid) }));
    if (members.length > 0) {
      console.log(
        `etcd RSS at the end: ${members.map((m) => `m${m.member} ${formatBytes(m.rssBytes ?? NaN)}`).join(', ')}`,
      );
    }
    ensureDirFor(o.out);
    fs.writeFileSync(
      o.out,
      JSON.stringify({ startedAt: new Date().toISOString(), loadAvgBefore, endpoints, phases, members }, null, 2),
    );
  } finally {
    await cluster?.cleanup();
  }
}

main().catch((e) => {
  console.error(`bench:etcd-lock: ${(e as Error).message}`);
  process.exit(1);
});

/**
 * `npm run bench:agent`: the agent's own footprint in a guest. Runs the real single executable
 * (dist/bin/headroom-agent, built by `npm run build:agent`) as a daemon against a real coordinator, at the
 * default report interval, with one declared job that does not fire during the run, and samples the
 * agent's RSS and CPU time from /proc for a minute. The binary is first evicted from the page cache, so
 * that it is read from disk as after a boot; a second, short run from a just-written copy shows how much
 * more resident the same code looks when the page cache holds it in large folios.
 *
 *   npm run bench:agent [-- --duration 60s] [-- --node]   (--node: run dist/agent/main.js under node instead)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../common/client/connection';
import { parseDuration } from '../common/util/duration';
import { AGENT_MAIN, DIST, startCoordinator, tempDir } from '../test/helpers/coordinator-process';
import { ProcessSampler, ensureDirFor, evictFromPageCache } from './proc-stats';

/** Start-up, until V8's memory reducer has given back the garbage of loading (it runs about 8 s in). */
const WARMUP_MS = 10_000;
/** Measured window of the second run, from a just-written copy of the binary: memory only. */
const JUST_WRITTEN_MS = 10_000;
const MiB = 1024 * 1024;

function parseArgs(argv: string[]) {
  let durationMs = 60_000;
  let node = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--duration') durationMs = parseDuration(argv[++i] ?? '');
    else if (argv[i] === '--node') node = true;
    else {
      process.stderr.write(
        `bench:agent: unknown option ${argv[i]}\nusage: npm run bench:agent [-- --duration 60s] [-- --node]\n`,
      );
      process.exit(64);
    }
  }
  return { durationMs, node };
}

/** The agent's memory as /proc/PID/status splits it. */
function memoryOf(pid: number): { anonMiB: number; fileMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { anonMiB: +(kib('RssAnon') / 1024).toFixed(1), fileMiB: +(kib('RssFile') / 1024).toFixed(1) };
}

interface AgentRun {
  /** Highest RSS while starting (the warm-up), before V8 has given back the garbage of loading. */
  rssStartupPeakMiB: number;
  /** Highest RSS in the measured window. */
  rssPeakMiB: number;
  rssEndMiB: number;
  anonMiB: number;
  fileMiB: number;
  cpuPercentOfOneCore: number;
  connected: boolean;
  lastLoadAgeMs?: number;
}

/** Runs the agent as a daemon against the coordinator and samples it over `durationMs` after a warm-up. */
async function runAgent(file: string, args: string[], coordinator: Clients, durationMs: number): Promise<AgentRun> {
  const agent = spawn(file, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, HEADROOM_LOG: 'warn' },
  });
  let stderr = '';
  agent.stderr.on('data', (d) => (stderr += d));
  try {
    const sampler = new ProcessSampler(agent.pid!, 1_000);
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    sampler.mark();
    const markedAt = Date.now();
    await new Promise((r) => setTimeout(r, durationMs));
    const window = sampler.stop();
    const peakMiB = (samples: { rssBytes: number }[]) =>
      +(Math.max(0, ...samples.map((x) => x.rssBytes)) / MiB).toFixed(1);
    if (agent.exitCode !== null) throw new Error(`the agent exited early (${agent.exitCode}):\n${stderr}`);
    const { agents } = await unary(coordinator.admin.ListAgents.bind(coordinator.admin), {});
    const seen = agents.find((a) => a.vm === 'bench-vm');
    return {
      rssStartupPeakMiB: peakMiB(sampler.samples.filter((x) => x.atMs < markedAt)),
      rssPeakMiB: peakMiB(sampler.samples.filter((x) => x.atMs >= markedAt)),
      rssEndMiB: +(window.rssEndBytes / MiB).toFixed(1),
      ...memoryOf(agent.pid!),
      cpuPercentOfOneCore: +window.cpuPercent.toFixed(3),
      connected: seen?.connected ?? false,
      lastLoadAgeMs: seen?.lastLoad ? Date.now() - seen.lastLoad.sampledUnixMs : undefined,
    };
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) =>
      agent.exitCode !== null || agent.signalCode !== null ? r(undefined) : agent.once('exit', r),
    );
  }
}

async function main(): Promise<void> {
  const { durationMs, node } = parseArgs(process.argv.slice(2));
  const sea = path.join(DIST, 'bin', 'headroom-agent');
  if (!node && !fs.existsSync(sea)) throw new Error(`${sea} is missing: run npm run build:agent`);
  const coordinator = await startCoordinator({ host: 'bench-host', env: { HEADROOM_LOG: 'warn' } });
  const dir = tempDir('headroom-bench-agent-');
  const config = path.join(dir, 'agent.yaml');
  fs.writeFileSync(
    config,
    [
      `coordinator: ${coordinator.address}`,
      'vm: bench-vm',
      'jobs:',
      '  - name: nightly',
      '    schedule: "30 1 1 1 *"',
      '    window: 1h',
      '    expectedDuration: 10m',
      '    command: ["true"]',
      '',
    ].join('\n'),
  );
  const clients = connect(coordinator.address, grpc.credentials.createInsecure());
  try {
    const policy = await unary(clients.admin.GetPolicy.bind(clients.admin), {});
    const runArgs = ['run', '--config', config];
    let cold: AgentRun;
    let evicted = false;
    let justWritten: AgentRun | undefined;
    if (node) {
      process.stdout.write(
        `agent: node dist/agent/main.js; warm-up ${WARMUP_MS / 1000} s, then ${durationMs / 1000} s measured\n`,
      );
      cold = await runAgent(process.execPath, [AGENT_MAIN, ...runArgs], clients, durationMs);
    } else {
      evicted = evictFromPageCache(sea);
      process.stdout.write(
        `agent: ${sea}${evicted ? ', read from disk (evicted from the page cache first, as after a boot)' : ''}; ` +
          `warm-up ${WARMUP_MS / 1000} s, then ${durationMs / 1000} s measured\n`,
      );
      cold = await runAgent(sea, runArgs, clients, durationMs);
      // A binary written moments ago (just built or installed) sits in the page cache in large folios, and
      // the kernel maps a whole folio on a page fault: the same code then shows as more resident memory.
      const copy = path.join(dir, 'headroom-agent');
      // write(), as the build does; cp may share or copy pages in the kernel and not show the effect.
      fs.writeFileSync(copy, fs.readFileSync(sea));
      fs.chmodSync(copy, 0o755);
      process.stdout.write(
        `agent: a copy written just now (${copy}); warm-up ${WARMUP_MS / 1000} s, then ${JUST_WRITTEN_MS / 1000} s measured\n`,
      );
      justWritten = await runAgent(copy, runArgs, clients, JUST_WRITTEN_MS);
    }
    const result = {
      machine: { cores: os.cpus().length, node: process.version },
      runtime: node ? 'node' : 'single executable',
      measuredSeconds: durationMs / 1000,
      reportIntervalMs: policy.reportIntervalMs,
      readFromDisk: evicted,
      ...cold,
      justWritten,
    };
    const out = path.resolve(DIST, '..', '.bench', 'agent.json');
    ensureDirFor(out);
    fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    const rss = (r: AgentRun) =>
      `peak ${r.rssPeakMiB} MiB, end ${r.rssEndMiB} MiB (anonymous ${r.anonMiB}, file-backed ${r.fileMiB})`;
    const mb = (mib: number) => `${((mib * MiB) / 1e6).toFixed(1)} MB`;
    process.stdout.write(
      [
        '',
        `  machine             ${result.machine.cores} cores, node ${result.machine.node}`,
        `  runtime             ${result.runtime}, report interval ${result.reportIntervalMs / 1000} s`,
        `  session             ${cold.connected ? 'connected' : 'NOT connected'}, last load report ${
          cold.lastLoadAgeMs === undefined ? 'never' : `${(cold.lastLoadAgeMs / 1000).toFixed(1)} s ago`
        }`,
        `  RSS                 ${rss(cold)}; peak ${mb(cold.rssPeakMiB)}   (target < 60 MB)`,
        `  RSS while starting  peak ${cold.rssStartupPeakMiB} MiB (${mb(cold.rssStartupPeakMiB)}) in the first ${WARMUP_MS / 1000} s, before V8 gives back the garbage of loading`,
        "                      anonymous: the agent's own heap; file-backed: pages of the executable (V8, ICU data) in use",
        ...(justWritten
          ? [
              `  RSS, binary just written   ${rss(justWritten)}: same code, mapped in the large folios of a fresh page cache`,
            ]
          : []),
        `  CPU                 ${cold.cpuPercentOfOneCore} % of one core over ${result.measuredSeconds} s   (target < 0.5 %)`,
        `  written to          ${path.relative(process.cwd(), out)}`,
        '',
      ].join('\n'),
    );
  } finally {
    clients.close();
    await coordinator.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench:agent failed: ${(e as Error).message}\n`);
  process.exit(1);
});

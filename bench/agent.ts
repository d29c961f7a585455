/**
 * `npm run bench:agent`: the agent's own footprint in a guest. Runs the real single executable
 * (dist/bin/headroom-agent, built by `npm run build:agent`) as a daemon against a real coordinator, at the
 * default report interval, with one declared job that does not fire during the run, and samples the
 * agent's RSS and CPU time from /proc for a minute.
 *
 *   npm run bench:agent [-- --duration 60s] [-- --node]   (--node: run dist/agent/main.js under node instead)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, unary } from '../common/connection';
import { parseDuration } from '../common/duration';
import { AGENT_MAIN, DIST, startCoordinator, tempDir } from '../test/helpers/coordinator-process';
import { ProcessSampler, ensureDirFor } from './proc-stats';

const WARMUP_MS = 5_000;
const MiB = 1024 * 1024;

function parseArgs(argv: string[]) {
  let durationMs = 60_000;
  let node = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--duration') durationMs = parseDuration(argv[++i] ?? '');
    else if (argv[i] === '--node') node = true;
    else {
      process.stderr.write(`bench:agent: unknown option ${argv[i]}\nusage: npm run bench:agent [-- --duration 60s] [-- --node]\n`);
      process.exit(64);
    }
  }
  return { durationMs, node };
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
  const [file, args] = node ? [process.execPath, [AGENT_MAIN, 'run', '--config', config]] : [sea, ['run', '--config', config]];
  const agent = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HEADROOM_LOG: 'warn' } });
  let stderr = '';
  agent.stderr.on('data', (d) => (stderr += d));
  const clients = connect(coordinator.address, grpc.credentials.createInsecure());
  try {
    process.stdout.write(`agent: ${node ? 'node dist/agent/main.js' : sea}; warm-up ${WARMUP_MS / 1000} s, then ${durationMs / 1000} s measured\n`);
    const sampler = new ProcessSampler(agent.pid!, 1_000);
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    sampler.mark();
    await new Promise((r) => setTimeout(r, durationMs));
    const window = sampler.stop();
    if (agent.exitCode !== null) throw new Error(`the agent exited early (${agent.exitCode}):\n${stderr}`);
    // Anonymous memory is the agent's own; file-backed pages are the executable's code and ICU data,
    // clean and reclaimable, shared with the page cache.
    const status = fs.readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    const { agents } = await unary(clients.admin.ListAgents.bind(clients.admin), {});
    const seen = agents.find((a) => a.vm === 'bench-vm');
    const policy = await unary(clients.admin.GetPolicy.bind(clients.admin), {});
    const result = {
      machine: { cores: os.cpus().length, node: process.version },
      runtime: node ? 'node' : 'single executable',
      measuredSeconds: durationMs / 1000,
      reportIntervalMs: policy.reportIntervalMs,
      connected: seen?.connected ?? false,
      lastLoadAgeMs: seen?.lastLoad ? Date.now() - seen.lastLoad.sampledUnixMs : undefined,
      rssPeakMiB: +(window.rssPeakBytes / MiB).toFixed(1),
      rssEndMiB: +(window.rssEndBytes / MiB).toFixed(1),
      rssAnonEndMiB: +(kib('RssAnon') / 1024).toFixed(1),
      rssFileEndMiB: +(kib('RssFile') / 1024).toFixed(1),
      cpuPercentOfOneCore: +window.cpuPercent.toFixed(3),
    };
    const out = path.resolve(DIST, '..', '.bench', 'agent.json');
    ensureDirFor(out);
    fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(
      [
        '',
        `  machine             ${result.machine.cores} cores, node ${result.machine.node}`,
        `  runtime             ${result.runtime}, report interval ${result.reportIntervalMs / 1000} s`,
        `  session             ${result.connected ? 'connected' : 'NOT connected'}, last load report ${
          result.lastLoadAgeMs === undefined ? 'never' : `${(result.lastLoadAgeMs / 1000).toFixed(1)} s ago`
        }`,
        `  RSS                 peak ${result.rssPeakMiB} MiB, end ${result.rssEndMiB} MiB   (target < 60 MB)`,
        `    of which at end   anonymous ${result.rssAnonEndMiB} MiB, file-backed ${result.rssFileEndMiB} MiB (executable code, ICU data)`,
        `  CPU                 ${result.cpuPercentOfOneCore} % of one core over ${result.measuredSeconds} s   (target < 0.5 %)`,
        `  written to          ${path.relative(process.cwd(), out)}`,
        '',
      ].join('\n'),
    );
  } finally {
    clients.close();
    agent.kill('SIGTERM');
    await coordinator.stop();
  }
}

main().catch((e) => {
  process.stderr.write(`bench:agent failed: ${(e as Error).message}\n`);
  process.exit(1);
});

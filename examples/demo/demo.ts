/**
 * The `npm start` demo, on loopback: a coordinator on an embedded SQLite file, three agents as separate
 * processes running real guest backups (tar + gzip of generated files) in short windows, and host-level
 * backups through `headroomctl host-backup`. Prints grants and releases as they happen, then a timeline
 * built from what the backup commands themselves recorded, and the count of guest/hypervisor overlaps.
 *
 *   npm start [-- --duration 80s] [-- --keep]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect } from '../../common/client/connection';
import { parseFlagDuration } from '../../common/util/duration';
import { formatUsageError, parseArgs as parseCommandLine } from '../../common/util/cli-args';
import { UsageError } from '../../common/util/usage-error';
import { EXIT_USAGE } from '../../common/util/exit-codes';
import type { v1 } from '../../proto';
import { historyEventType, tokenKind } from '../../proto/enums';
import {
  AGENT_MAIN,
  CTL_MAIN,
  type RunningCoordinator,
  startCoordinator,
  tempDir,
} from '../../test/helpers/coordinator-process';
import { type Interval, countOverlaps, renderTimeline } from './timeline';

const HOST = 'demo-host';
const VMS = [
  { vm: 'vm-web', schedule: '0,20,40 * * * * *' },
  { vm: 'vm-db', schedule: '5,25,45 * * * * *' },
  { vm: 'vm-mail', schedule: '10,30,50 * * * * *' },
];

/**
 * The demo's own options, read by the executables' parser. The demo's start gate is off: on a busy
 * machine (a build, the tests) its backups would otherwise wait for the load to drop.
 */
function parseArgs(argv: string[]) {
  try {
    const args = parseCommandLine(argv, [
      { name: 'duration', value: 'DURATION', help: 'how long the agents run', parse: parseFlagDuration },
      { name: 'keep', help: 'keep the working directory and the coordinator' },
    ]);
    return { durationMs: args.get<number>('duration') ?? 80_000, keep: args.flag('keep') };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(formatUsageError('demo', err.message, 'npm start -- [--duration 80s] [--keep]'));
    process.exit(EXIT_USAGE);
  }
}

/** The dashboard's address, on the range that shows the demo's runs best. */
function dashboardUrl(coordinator: RunningCoordinator): string {
  return `${coordinator.httpUrl}/?range=10+min`;
}

/** Removes the working directory, or says where it is when --keep keeps it. */
function leave(dir: string, keep: boolean): void {
  if (keep) {
    process.stdout.write(`kept the working directory ${dir} (database, logs, archives); remove it with rm -r ${dir}\n`);
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`removed the working directory ${dir} (npm start -- --keep keeps it)\n`);
}

/** A shell command that records its own start and end (ms) in the audit file around a real backup. */
function backupCommand(
  kind: string,
  vm: string,
  dataDir: string,
  outDir: string,
  audit: string,
  extraSleepS: number,
): string[] {
  const stamp = (what: string) => `echo "${what} ${kind} ${vm} $(date +%s%3N)" >> '${audit}'`;
  return [
    'sh',
    '-c',
    `${stamp('start')}; tar -czf '${outDir}/${vm}-${kind.toLowerCase()}-'$(date +%s%N)'.tgz' -C '${dataDir}' . && sleep ${extraSleepS}; status=$?; ${stamp('end')}; exit $status`,
  ];
}

function generateData(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 16; i++) {
    // Half random, half repetitive: gzip has real work to do and the archives are not trivially small.
    const half = randomBytes(128 * 1024);
    fs.writeFileSync(path.join(dir, `file-${i}.bin`), Buffer.concat([half, Buffer.alloc(128 * 1024, i)]));
  }
}

function time(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

function printEvent(e: v1.HistoryEvent__Output): void {
  if (e.type === 'HISTORY_EVENT_TYPE_RENEWED') return;
  const kind = tokenKind.fromWire(e.kind) ?? '';
  const fencing = e.fencing ? `fencing ${e.fencing}` : '';
  const detail = e.type === 'HISTORY_EVENT_TYPE_GRANTED' ? '' : e.detail;
  process.stdout.write(
    `  ${time(e.atUnixMs)}  ${historyEventType.show(e.type).padEnd(9)} ${kind.padEnd(10)} ${e.vm.padEnd(8)} ${e.job.padEnd(8)} ${fencing.padEnd(11)} ${detail}\n`,
  );
}

function readAudit(file: string): Interval[] {
  if (!fs.existsSync(file)) return [];
  const open = new Map<string, number>();
  const intervals: Interval[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [what, kind, vm, at] = line.split(' ');
    if (!at) continue;
    const key = `${kind} ${vm}`;
    if (what === 'start') open.set(key, Number(at));
    else if (open.has(key)) {
      intervals.push({ kind: kind as Interval['kind'], vm, start: open.get(key)!, end: Number(at) });
      open.delete(key);
    }
  }
  return intervals;
}

async function main(): Promise<void> {
  const { durationMs, keep } = parseArgs(process.argv.slice(2));
  const dir = tempDir('headroom-demo-');
  const audit = path.join(dir, 'audit.log');
  const outDir = path.join(dir, 'backups');
  fs.mkdirSync(outDir);
  const children: ChildProcess[] = [];
  const logOf = (name: string) => fs.openSync(path.join(dir, `${name}.log`), 'a');

  process.stdout.write(`\nHeadroom demo — working directory ${dir}\n`);
  const config = path.join(dir, 'coordinator.yaml');
  // The dashboard on loopback: plain HTTP, for whoever is on this machine (docs/dashboard.md).
  fs.writeFileSync(
    config,
    'policy:\n  startBelowCpuPercent: 0\n  hostStartBelowCpuPercent: 0\n  minStartGap: 0\nhttp:\n  listen: 127.0.0.1:0\n',
  );
  const coordinator = await startCoordinator({
    host: HOST,
    dbPath: path.join(dir, 'headroom.db'),
    args: ['--config', config, '--lease-ttl', '10s', '--report-interval', '5s'],
    env: { HEADROOM_LOG: 'info' },
  });
  process.stdout.write(`coordinator listening on ${coordinator.address} (database ${coordinator.dbPath})\n`);
  process.stdout.write(`dashboard: ${dashboardUrl(coordinator)}\n`);
  const cleanup = async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await coordinator.stop();
  };
  process.once('SIGINT', () =>
    cleanup().then(() => {
      leave(dir, keep);
      process.exit(130);
    }),
  );

  for (const { vm, schedule } of VMS) {
    const data = path.join(dir, 'data', vm);
    generateData(data);
    const config = path.join(dir, `${vm}.yaml`);
    fs.writeFileSync(
      config,
      [
        `coordinator: ${coordinator.address}`,
        `vm: ${vm}`,
        `host: ${HOST}`,
        'killGrace: 2s',
        'jobs:',
        '  - name: nightly',
        `    schedule: "${schedule}"`,
        '    window: 15s',
        '    expectedDuration: 4s',
        `    command: ${JSON.stringify(backupCommand('GUEST', vm, data, outDir, audit, 3))}`,
        '',
      ].join('\n'),
    );
    const log = logOf(vm);
    children.push(spawn(process.execPath, [AGENT_MAIN, 'run', '--config', config], { stdio: ['ignore', log, log] }));
  }
  process.stdout.write(`3 agents started (vm-web, vm-db, vm-mail); each backs up every 20 s in a 15 s window\n`);
  process.stdout.write(`host-level backups of vm-db and vm-web go through headroomctl host-backup\n\n`);

  const clients = connect(coordinator.address, grpc.credentials.createInsecure());
  const watch = clients.admin.WatchHistory({ host: HOST });
  const events: v1.HistoryEvent__Output[] = [];
  watch.on('data', (e: v1.HistoryEvent__Output) => {
    events.push(e);
    printEvent(e);
  });
  watch.on('error', () => {});

  const hostBackups: Promise<number>[] = [];
  const hostBackup = (vm: string) => {
    const data = path.join(dir, 'data', vm);
    const log = logOf(`host-backup-${vm}`);
    const child = spawn(
      process.execPath,
      [
        CTL_MAIN,
        '--coordinator',
        coordinator.address,
        'host-backup',
        '--host',
        HOST,
        '--vm',
        vm,
        '--job',
        'vzdump',
        '--window',
        '30s',
        '--expected-duration',
        '6s',
        '--',
        ...backupCommand('HYPERVISOR', vm, data, outDir, audit, 5),
      ],
      { stdio: ['ignore', log, log] },
    );
    children.push(child);
    hostBackups.push(new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1))));
  };
  const timers = [
    setTimeout(() => hostBackup('vm-db'), Math.min(12_000, durationMs / 4)),
    setTimeout(() => hostBackup('vm-web'), Math.min(45_000, durationMs / 2)),
  ];

  await new Promise((r) => setTimeout(r, durationMs));
  timers.forEach(clearTimeout);
  process.stdout.write('\nstopping the agents (they release what they hold)…\n');
  for (const c of children.slice(0, VMS.length)) c.kill('SIGTERM');
  const hostExit = await Promise.all(hostBackups);
  await Promise.all(
    children.map((c) =>
      c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
    ),
  );

  const intervals = readAudit(audit);
  const overlaps = countOverlaps(intervals);
  const granted = events.filter((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED');
  process.stdout.write(`\nTimeline (from the backup commands' own start/end records):\n\n`);
  process.stdout.write(renderTimeline(intervals, 72));
  process.stdout.write(
    `\n  tokens granted: ${granted.filter((e) => e.kind === 'TOKEN_KIND_GUEST').length} GUEST, ` +
      `${granted.filter((e) => e.kind === 'TOKEN_KIND_HYPERVISOR').length} HYPERVISOR; ` +
      `backups run: ${intervals.length}; host-backup exit codes: ${hostExit.join(', ') || 'none'}\n`,
  );
  process.stdout.write(`  guest/hypervisor overlaps: ${overlaps}\n`);
  process.stdout.write(`  archives written to ${outDir}\n`);

  if (keep) {
    process.stdout.write(
      `\n--keep: the coordinator stays up on ${coordinator.address}, its dashboard on ${dashboardUrl(coordinator)}. Try:\n` +
        `  node dist/ctl/main.js --coordinator ${coordinator.address} status\n` +
        `  node dist/ctl/main.js --coordinator ${coordinator.address} history --limit 20\n` +
        `Press Ctrl-C to stop.\n`,
    );
    clients.close();
    return;
  }
  watch.cancel();
  clients.close();
  await coordinator.stop();
  leave(dir, keep);
  process.exit(overlaps === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`demo failed: ${(e as Error).stack}\n`);
  process.exit(1);
});

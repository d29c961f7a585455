/**
 * Phase (b) of `npm run bench:penalty`: the backup run the way Headroom runs it. A real coordinator (its
 * host policy giving backups the bench's budget and agents a 1 s report interval) and a real
 * headroom-agent daemon whose one job fires a few seconds from now: the agent takes a GUEST token, starts
 * the command under the token's budget, reports load, and the coordinator throttles or pauses it as the
 * VM's foreground load asks. Its duration is the token's: from GRANTED to RELEASED in the history.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, unary } from '../common/client/connection';
import { enforcement as enforcements, historyEventType } from '../proto/enums';
import { AGENT_MAIN, startCoordinator } from '../test/helpers/coordinator-process';
import { WAIT_THRESHOLDS_OFF } from '../test/helpers/wait-signals';
import { DEFAULT_POLICY } from '../coordinator/domain/policy';

const HOST = 'bench-host';
const VM = 'bench-vm';
const JOB = 'penalty-backup';

/** A 6-field cron expression (seconds first) for one time of day, in local time. */
function cronAt(at: Date): string {
  return `${at.getSeconds()} ${at.getMinutes()} ${at.getHours()} * * *`;
}

export async function runUnderHeadroom(args: {
  dir: string;
  command: string[];
  /** The budget Headroom gives the backup: a fixed one, or the adaptive controller's range. */
  options: { cpuPercent: number; ioBytesPerSec: number; adaptiveFrom?: { cpuPercent: number; ioBytesPerSec: number } };
  progress(line: string): void;
  /** Receives the function that stops the agent and the coordinator, for an interrupted run. */
  onStop(stop: () => Promise<void>): void;
}): Promise<{ backupSeconds: number; notes: string[] }> {
  const { command, options, progress } = args;
  // A database and configuration of the phase's own: another phase's RELEASED must not end this one.
  const dir = fs.mkdtempSync(path.join(args.dir, 'phase-'));
  const coordinator = await startCoordinator({
    host: HOST,
    dbPath: path.join(dir, 'headroom.db'),
    env: { HEADROOM_LOG: 'info' },
  });
  const clients = connect(coordinator.address, grpc.credentials.createInsecure());
  const agentLog: string[] = [];
  let agent: ReturnType<typeof spawn> | undefined;
  const stop = async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    clients.close();
    await coordinator.stop();
  };
  args.onStop(stop);
  try {
    await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      reportIntervalMs: 1_000,
      budgetCpuPercent: options.cpuPercent,
      budgetIoBytesPerSec: options.ioBytesPerSec,
      ...(options.adaptiveFrom
        ? {
            // The product's wait signals (PSI, disk await), which the tests' coordinator policy turns off,
            // drive the adaptive budget between the lowest and the highest fixed one.
            ...Object.fromEntries(
              Object.keys(WAIT_THRESHOLDS_OFF).map((k) => [k, DEFAULT_POLICY[k as keyof typeof WAIT_THRESHOLDS_OFF]]),
            ),
            budgetMode: 'adaptive',
            throttledCpuPercent: options.adaptiveFrom.cpuPercent,
            throttledIoBytesPerSec: options.adaptiveFrom.ioBytesPerSec,
            // The default 30 s between raises suits backups of hours; these last a minute or two.
            budgetDwellMs: 3_000,
            maxPauseMs: 0,
          }
        : // A fixed budget: no threshold moves it.
          { ...WAIT_THRESHOLDS_OFF, throttleAboveCpuPercent: 0, pauseAboveCpuPercent: 0, resumeBelowCpuPercent: 0 }),
    });
    const startAt = new Date(Date.now() + 4_000);
    const config = path.join(dir, 'agent.yaml');
    fs.writeFileSync(
      config,
      [
        `coordinator: ${coordinator.address}`,
        `vm: ${VM}`,
        `host: ${HOST}`,
        'jobs:',
        `  - name: ${JOB}`,
        `    schedule: "${cronAt(startAt)}"`,
        '    window: 1h',
        '    expectedDuration: 5m',
        `    command: ${JSON.stringify(command)}`,
        '',
      ].join('\n'),
    );
    agent = spawn(process.execPath, [AGENT_MAIN, 'run', '--config', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, HEADROOM_LOG: 'info' },
    });
    agent.stderr!.on('data', (d: Buffer) => agentLog.push(...String(d).split('\n').filter(Boolean)));
    const range = options.adaptiveFrom
      ? `adaptive from ${options.adaptiveFrom.cpuPercent}% of a core, ${(options.adaptiveFrom.ioBytesPerSec / 1048576).toFixed(0)} MiB/s up to `
      : '';
    progress(
      `   headroom-agent runs the backup at ${startAt.toTimeString().slice(0, 8)} under ${range}${options.cpuPercent}% of a core, ${(options.ioBytesPerSec / 1048576).toFixed(0)} MiB/s`,
    );

    const history = async () =>
      (await unary(clients.admin.ListHistory.bind(clients.admin), { host: HOST, limit: 1000 })).events;
    let granted: number | undefined;
    let ended: { at: number; type: string; detail: string } | undefined;
    let enforcement = '';
    for (;;) {
      if (agent.exitCode !== null)
        throw new Error(`the agent exited (${agent.exitCode}):\n${agentLog.slice(-20).join('\n')}`);
      const events = (await history()).filter((e) => e.vm === VM && e.job === JOB);
      granted ??= events.find((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED')?.atUnixMs;
      const end = events.find(
        (e) =>
          e.type === 'HISTORY_EVENT_TYPE_RELEASED' ||
          e.type === 'HISTORY_EVENT_TYPE_EXPIRED' ||
          e.type === 'HISTORY_EVENT_TYPE_REVOKED',
      );
      if (end) {
        ended = { at: end.atUnixMs, type: historyEventType.show(end.type), detail: end.detail };
        break;
      }
      if (granted !== undefined && !enforcement) {
        const { agents } = await unary(clients.admin.ListAgents.bind(clients.admin), { host: HOST });
        const report = agents.find((a) => a.vm === VM)?.budgets[0];
        if (report)
          enforcement = `${enforcements.show(report.enforcement)}${report.detail ? ` (${report.detail})` : ''}`;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    if (granted === undefined) throw new Error('the backup ended but was never granted');
    const budgetChanges = agentLog.filter((l) => /changing the budget|pausing the job/.test(l));
    return {
      backupSeconds: (ended.at - granted) / 1000,
      notes: [
        `token ${ended.type.toLowerCase()}: ${ended.detail}`,
        `enforced by ${enforcement || 'an unreported mechanism'}`,
        budgetChanges.length === 0
          ? "the coordinator never throttled or paused it: the foreground stayed under the thresholds, the token's budget alone held it"
          : `the coordinator changed its budget ${budgetChanges.length} time(s); last: ${budgetChanges[budgetChanges.length - 1]}`,
      ],
    };
  } finally {
    await stop();
  }
}

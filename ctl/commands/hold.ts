/**
 * `headroomctl hold`: takes a HYPERVISOR token for a backup that another program runs (vzdump, through
 * examples/vzdump/headroom-vzdump-hook) and keeps it between two invocations: the first returns once the
 * token is granted and leaves a holder in the background (host-backup/hold-holder.ts) that renews it; a
 * second one, `hold --release`, ends it with the outcome (host-backup/hold-release.ts). The two meet in a
 * state file (host-backup/hold-state.ts).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { systemClock } from '../../common/util/clock';
import { type HoldEnd, type HolderMessage, type ParentChannel, runHolder } from '../../host-backup/hold-holder';
import { releaseHold } from '../../host-backup/hold-release';
import { type LossStop, cancelQemuBackup, stopChildrenOf } from '../../host-backup/loss-stop';
import { FINAL_PHASES, parseOutcome, processAlive, readHoldState } from '../../host-backup/hold-state';
import type { StopReason } from '../../common/backup-run/guarded-run';
import { parsePositiveInt, parseString } from '../../common/util/cli-args';
import type { Command } from '../command';
import { type Context, note } from '../context';
import { EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_TEMPFAIL } from '../../common/util/exit-codes';
import { UsageError } from '../../common/util/usage-error';
import { coordinatorLink, hostBackupCommand, progressOutput } from './host-backup';

export const DEFAULT_HOLD_JOB = 'hold';

/** The request options host-backup takes too, with its help texts. */
const SHARED = new Set(['host', 'vm', 'window', 'expected-duration', 'priority', 'ttl', 'shared-target']);
const ACQUIRE_OPTIONS = hostBackupCommand.options.filter((o) => SHARED.has(o.name));

export const holdCommand: Command = {
  name: 'hold',
  examples: [
    'hold --state-file /run/headroom/hold.json --host pve1 --vm 101 --window 30m',
    'hold --state-file /run/headroom/hold.json --release --outcome success',
  ],
  summary: "hold a HYPERVISOR token across invocations (for hook scripts such as vzdump's)",
  synopsis:
    '--state-file FILE {--host H --vm V [--job NAME] [--window DURATION] [--ttl DURATION] [--shared-target NAME] [--log FILE] [--watch-pid PID] [--stop-qmp SOCKET | --stop-children] [--foreground] | ' +
    '--release --outcome success|failure [--message TEXT]}',
  description: [
    'Waits for a HYPERVISOR token on the host (progress on stderr) and returns once it is granted, leaving',
    'a holder process in the background that renews it. The holder writes FILE (JSON: its pid, the phase',
    'waiting/held/lost/released/failed, the token) and logs to --log (default FILE.log). Interrupted while',
    'waiting, the request is withdrawn.',
    '',
    '--release ends the hold: the holder releases the token with the outcome and exits, and FILE is',
    'removed. A SIGTERM to the holder alone releases it as a failure.',
    '',
    'If the token is lost while held (revoked, expired, renewals failing), the holder logs it and exits;',
    'the later --release says so and exits 75. Told how, it first stops the backup the token stood for:',
    "--stop-qmp cancels the backup in the QEMU whose QMP socket that is (Proxmox's backup-cancel, or",
    "block-job-cancel on a stock QEMU); --stop-children sends SIGTERM to what --watch-pid's process runs",
    "(vzdump's tar pipeline for a container). Without either, the backup runs on. With --watch-pid, the holder releases the token as a",
    'failure (or stops waiting) when that process ends without a release: a backup tool that dies must',
    'not leave the host blocked. With --foreground the holder runs in this process until a signal.',
    '',
    'Exit status: 0 granted (or released); 75 not granted within --window, denied, or lost before',
    '--release; 78 refused until a setting changes (TLS or identity: the message names it); 1 FILE in use',
    'by another holder, or the token could not be released; 64 usage error.',
  ].join('\n'),
  options: [
    { name: 'state-file', value: 'FILE', help: 'where the holder keeps its state (required)', parse: parseString },
    ...ACQUIRE_OPTIONS,
    { name: 'job', value: 'NAME', help: `job name for history (default: ${DEFAULT_HOLD_JOB})`, parse: parseString },
    {
      name: 'log',
      value: 'FILE',
      help: "the background holder's log (default: the state file + .log)",
      parse: parseString,
    },
    {
      name: 'watch-pid',
      value: 'PID',
      help: 'release as a failure (or stop waiting) when process PID ends',
      parse: parsePid,
    },
    {
      name: 'stop-qmp',
      value: 'SOCKET',
      help: "if the token is lost, cancel the backup in the QEMU of this QMP socket (Proxmox's /var/run/qemu-server/VMID.qmp)",
      parse: parseString,
    },
    { name: 'stop-children', help: "if the token is lost, stop (SIGTERM) what --watch-pid's process runs" },
    { name: 'foreground', help: 'hold in this process until SIGTERM/SIGINT instead of in the background' },
    { name: 'release', help: 'release the token held through --state-file' },
    {
      name: 'outcome',
      value: 'success|failure',
      help: 'with --release: how the backup ended (required)',
      parse: parseOutcome,
    },
    { name: 'message', value: 'TEXT', help: 'with --release: recorded with the outcome', parse: parseString },
  ],
  async run(ctx, args) {
    const stateFile = path.resolve(args.require<string>('state-file'));
    if (args.flag('release')) {
      const stray = [...SHARED, 'job', 'log', 'watch-pid', 'stop-qmp', 'stop-children', 'foreground'].find((name) =>
        args.has(name),
      );
      if (stray) throw new UsageError(`--${stray} does not go with --release`);
      const released = await releaseHold({
        stateFile,
        success: args.require<boolean>('outcome'),
        message: args.get<string>('message') ?? '',
        client: () => ctx.clients().token,
        log: ctx.log,
      });
      note(ctx, released.message);
      return released.end === 'done' ? EXIT_OK : released.end === 'not-held' ? EXIT_TEMPFAIL : EXIT_FAILURE;
    }
    for (const name of ['outcome', 'message'])
      if (args.has(name)) throw new UsageError(`--${name} goes with --release`);
    const host = args.require<string>('host');
    const vm = args.require<string>('vm');
    // Checked here, before a holder is started in the background.
    const lossStop = parseLossStop(
      args.get<string>('stop-qmp'),
      args.flag('stop-children'),
      args.get<number>('watch-pid'),
    );
    const existing = readHoldState(stateFile);
    if (existing && !FINAL_PHASES.has(existing.phase) && existing.pid !== process.pid && processAlive(existing.pid)) {
      note(
        ctx,
        `${stateFile} is in use: pid ${existing.pid} is ${existing.phase === 'held' ? 'holding' : 'waiting for'} a token for ${existing.vm}`,
      );
      return EXIT_FAILURE;
    }
    if (!args.flag('foreground')) return startHolder(ctx, stateFile, args.get<string>('log') ?? `${stateFile}.log`);

    const windowMs = args.get<number>('window');
    const windowEndUnixMs = windowMs === undefined ? 0 : systemClock.now() + windowMs;
    const parent = parentChannel();
    // Progress goes to our stderr (the log) and, while someone waits for the grant, to them.
    const relay: Context = {
      ...ctx,
      io: {
        stdout: ctx.io.stdout,
        stderr: (text) => {
          ctx.io.stderr(text);
          parent?.send({ event: 'progress', text });
        },
      },
    };
    const abort = new AbortController();
    const removeInterrupt = ctx.onInterrupt((signal) => abort.abort({ kind: 'signal', signal } satisfies StopReason));
    try {
      const end = await runHolder({
        stateFile,
        parent,
        watchPid: args.get<number>('watch-pid'),
        lossStop,
        request: {
          kind: 'TOKEN_KIND_HYPERVISOR',
          host,
          vm,
          job: args.get<string>('job') ?? DEFAULT_HOLD_JOB,
          expectedDurationMs: args.get<number>('expected-duration') ?? 0,
          latestStartUnixMs: windowEndUnixMs,
          windowEndUnixMs,
          priority: args.get<number>('priority') ?? 0,
          ttlMs: args.get<number>('ttl') ?? 0,
          target: args.get<string>('shared-target') ?? '',
        },
        link: coordinatorLink(ctx),
        log: ctx.log,
        now: ctx.now,
        signal: abort.signal,
        emit: progressOutput(relay),
        note: (text) => note(relay, text),
      });
      return holdExitCode(end);
    } finally {
      removeInterrupt();
    }
  },
};

/** 0 released; 1 not released; 75 lost, or not granted; 78 refused until a setting changes; 128+N when signal N withdrew the request. */
function holdExitCode(end: HoldEnd): number {
  switch (end.kind) {
    case 'released':
      return EXIT_OK;
    case 'unreleased':
      return EXIT_FAILURE;
    case 'lost':
      return EXIT_TEMPFAIL;
    case 'not-granted':
      if (end.signal) return 128 + os.constants.signals[end.signal];
      return end.misconfigured ? EXIT_CONFIG : EXIT_TEMPFAIL;
  }
}

/** What stops the backup if the token is lost: --stop-qmp, --stop-children (of --watch-pid), or nothing. */
function parseLossStop(qmp: string | undefined, children: boolean, watchPid: number | undefined): LossStop | undefined {
  if (qmp !== undefined && children) throw new UsageError('--stop-qmp and --stop-children do not go together');
  if (qmp !== undefined) return cancelQemuBackup(qmp);
  if (!children) return undefined;
  if (watchPid === undefined)
    throw new UsageError('--stop-children needs --watch-pid (the process whose children to stop)');
  return stopChildrenOf(watchPid);
}

function parsePid(raw: string): number {
  const pid = parsePositiveInt(raw);
  if (!processAlive(pid)) throw new Error(`no process ${pid}`);
  return pid;
}

/** The IPC channel to the invocation that started us in the background, if it did. */
function parentChannel(): ParentChannel | undefined {
  if (!process.send) return undefined;
  return {
    send: (message) => {
      if (process.connected) process.send!(message);
    },
    onGone: (gone) => process.once('disconnect', gone),
  };
}

/**
 * Starts this same command line with --foreground as a detached process and relays its progress until
 * the grant. Its stdio is the log file, not ours: a hook's caller (vzdump) reads the hook's output until
 * the end, which must come when the hook returns, not when the holder does.
 */
function startHolder(ctx: Context, stateFile: string, logFile: string): Promise<number> {
  fs.mkdirSync(path.dirname(stateFile), { recursive: true });
  const log = fs.openSync(logFile, 'w');
  const argv = [...process.execArgv, process.argv[1], ...process.argv.slice(2), '--foreground'];
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', log, log, 'ipc'] });
  fs.closeSync(log);
  return new Promise<number>((resolve) => {
    let settled = false;
    const finish = (code: number) => {
      if (settled) return;
      settled = true;
      removeInterrupt();
      resolve(code);
    };
    // Interrupted while waiting: the holder withdraws the request and reports how it ended.
    const removeInterrupt = ctx.onInterrupt((signal) => child.kill(signal));
    child.on('message', (m: HolderMessage) => {
      if (m.event === 'progress') ctx.io.stderr(m.text);
      else if (m.event === 'failed') finish(holdExitCode(m.end));
      else if (m.event === 'granted') {
        note(
          ctx,
          `holding token ${m.tokenId} in the background (pid ${child.pid}, log ${logFile}); end it with: headroomctl hold --release --state-file ${stateFile} --outcome success|failure`,
        );
        child.disconnect();
        child.unref();
        finish(EXIT_OK);
      }
    });
    child.on('error', (err) => {
      note(ctx, `cannot start the holder: ${err.message}`);
      finish(EXIT_FAILURE);
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      note(ctx, `the holder ended (${signal ?? `exit ${code}`}) before a token was granted; see ${logFile}`);
      finish(code || (signal ? 128 + os.constants.signals[signal] : EXIT_FAILURE));
    });
  });
}

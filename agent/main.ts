#!/usr/bin/env node
/**
 * The `headroom-agent` command line: `run` (the daemon), `exec` (one-shot wrapper), `check`, `enroll`,
 * `freeze-notice` and `install-fsfreeze-hook` (qemu-guest-agent integration, fsfreeze-cli.ts), `version`,
 * and help. Turns typed errors into sysexits codes: 64 usage, 78 configuration, 75 for "try later".
 */
import * as path from 'node:path';
import { createLogger, Logger } from '../common/util/log';
import { formatDuration } from '../common/util/duration';
import { formatClock, formatCommand } from '../common/util/human';
import { EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/util/exit-codes';
import { DEFAULT_CONFIG_PATH, loadAgentConfig } from './config';
import { startDaemon } from './daemon';
import { type OptionSpecs, parse } from './cli-args';
import { didYouMean, formatUsageError } from '../common/util/cli-args';
import { SHELLS, type Shell, completionScript } from '../common/util/completion';
import { ConfigError } from '../common/util/config-error';
import { UsageError } from '../common/util/usage-error';
import {
  FREEZE_NOTICE_HELP,
  FREEZE_OPTIONS,
  INSTALL_HOOK_HELP,
  INSTALL_HOOK_OPTIONS,
  freezeNoticeCommand,
  installHookCommand,
} from './freeze/fsfreeze-cli';
import { planExec, runExec } from './exec-command';
import { nextOccurrence } from './jobs/scheduler';
import { AGENT_VERSION } from './version';
import { role } from '../proto/enums';

const PROGRAM = 'headroom-agent';

const HELP = `headroom-agent ${AGENT_VERSION}: the Headroom in-guest agent

Usage:
  headroom-agent run [--config FILE]            run the daemon: session with the coordinator, scheduled jobs
  headroom-agent exec --job NAME [options] -- COMMAND [ARG...]
                                                 run one backup command under a token (for cron/systemd timers)
  headroom-agent check [--config FILE]          validate the configuration and show the next runs
  headroom-agent enroll --token TOKEN --coordinator HOST:PORT [--dir DIR]
                                                 get this VM's client certificate with a one-time token
  headroom-agent freeze-notice freeze|thaw [--source S]
                                                 tell the running daemon the hypervisor froze/thawed this VM
  headroom-agent install-fsfreeze-hook [--dir DIR]
                                                 install the qemu-guest-agent hook that runs freeze-notice
  headroom-agent completion bash|zsh            print the shell completion script
  headroom-agent version                        print the version (also --version)
  headroom-agent help [COMMAND]                 this help, or a command's

Environment: HEADROOM_LOG=debug|info|warn|error|silent (default info), HEADROOM_LOG_FORMAT=json.
Exit codes: the command's own for exec; 64 usage error; 75 denied, skipped, lease lost or revoked
(try later); 78 configuration error.

Examples:
  headroom-agent enroll --token hr1.… --coordinator coordinator.example.org:7400
  headroom-agent check --config /etc/headroom/agent.yaml
  headroom-agent run
  headroom-agent exec --job nightly --window 2h -- restic backup /data
`;

const RUN_HELP = `Usage: headroom-agent run [--config FILE]

Keeps a session with the coordinator (hello, load reports, commands), runs the jobs of the configuration
file at their scheduled times under GUEST tokens, and reconnects forever when the coordinator is away.
SIGTERM or SIGINT stops the running jobs (their tokens are released) and exits.

Options:
  -c, --config FILE   configuration file (default ${DEFAULT_CONFIG_PATH}); see examples/agent.yaml
  -h, --help          this help

Examples:
  headroom-agent run
  HEADROOM_LOG=debug headroom-agent run --config ./agent.yaml
`;

const EXEC_HELP = `Usage: headroom-agent exec --job NAME [options] -- COMMAND [ARG...]

Waits for a GUEST token for this VM, runs COMMAND with this terminal's stdin/stdout/stderr, renews the
lease while it runs and releases it with the outcome. Progress goes to stderr. The command runs in its own
process group; SIGINT/SIGTERM while waiting withdraws the request, while running is forwarded to it.

Options:
  -j, --job NAME                the job's name, as the coordinator shows it (required)
  -c, --config FILE             read coordinator, tls, vm, host and job settings from this file
                                (default: ${DEFAULT_CONFIG_PATH} when it exists). Without a command
                                after --, the command of the job with this name in the file runs.
  -w, --window DURATION         how long it may wait to start (default 1h, or the job's window)
  -e, --expected-duration DUR   how long the command usually takes (default 10m, or the job's)
      --coordinator ADDR        host:port, or cluster members IP:port,… (default: config file, else 127.0.0.1:7400)
      --vm ID                   this VM's identity (default: config file, else the SMBIOS UUID, else
                                the hostname)
      --host NAME               the host this VM runs on (default: config file, else the coordinator's)
      --priority N              higher is served first among waiting requests (default 0)
      --kill-grace DURATION     SIGTERM to SIGKILL when the command must stop (default 10s)
      --on-unreachable skip|run when the coordinator cannot be reached: give up at the window's
                                end (skip, default) or run without a token (run)
      --ttl DURATION            ask for this lease TTL instead of the host's default
  -h, --help                    this help

Exit code: the command's; 75 when denied, when the window closed before a slot (or the coordinator)
was available, or when the lease was lost or revoked and the command was stopped; 64 usage; 78 config.
Durations: 500ms, 90s, 10m, 2h, 1h30m (a unit is required).

Examples:
  headroom-agent exec --job nightly --window 2h -- restic backup /data
  headroom-agent exec --config /etc/headroom/agent.yaml --job tar-data
  headroom-agent exec --job db-dump --expected-duration 20m --on-unreachable run -- pg_dumpall -f /backup/all.sql
`;

/** enroll writes its files beside the default configuration. */
const DEFAULT_ENROLL_DIR = path.dirname(DEFAULT_CONFIG_PATH);

const ENROLL_HELP = `Usage: headroom-agent enroll --token TOKEN --coordinator HOST:PORT [--dir DIR]

Joins this VM to the coordinator with a one-time token from 'headroomctl enroll create'. Checks that the
coordinator presents the CA the token pins (its SHA-256 fingerprint), makes a key pair here, sends a
certificate request over TLS and writes, in DIR: ca.pem, agent.pem (the certificate, bound to this VM and
its host) and agent-key.pem (mode 0600; the key never leaves this machine). Then set tls.caFile,
tls.certFile and tls.keyFile in agent.yaml (printed below on success): from then on the agent uses
mutual TLS, and may act only for its own VM, with GUEST tokens. The certificate is valid for a year;
'headroom-agent run' renews it over its session when 2/3 of that has passed (tls.renewAtFraction).

Options:
  -t, --token TOKEN         the token (used once; it expires)
      --coordinator ADDR    the coordinator, host:port, as named in its certificate
  -d, --dir DIR             where to write the files (default ${DEFAULT_ENROLL_DIR})
  -h, --help                this help

Exit code: 0 enrolled; 1 refused (used or expired token, another CA) or unreachable; 64 usage.

Examples:
  headroom-agent enroll --token hr1.… --coordinator coordinator.example.org:7400
  headroom-agent enroll --token hr1.… --coordinator 10.0.0.5:7400 --dir ./pki
`;

const CHECK_HELP = `Usage: headroom-agent check [--config FILE]

Validates the configuration file (every problem is listed) and prints each job's command and its next
three runs (local time).

Options:
  -c, --config FILE   configuration file (default ${DEFAULT_CONFIG_PATH})
  -h, --help          this help

Examples:
  headroom-agent check
  headroom-agent check --config ./agent.yaml
`;

const CONFIG_OPTIONS: OptionSpecs = { config: { value: 'FILE', short: 'c' }, help: { short: 'h' } };

const EXEC_OPTIONS: OptionSpecs = {
  job: { value: 'NAME', short: 'j' },
  config: { value: 'FILE', short: 'c' },
  window: { value: 'DURATION', short: 'w' },
  'expected-duration': { value: 'DURATION', short: 'e' },
  coordinator: { value: 'ADDR' },
  vm: { value: 'ID' },
  host: { value: 'NAME' },
  priority: { value: 'N' },
  'kill-grace': { value: 'DURATION' },
  'on-unreachable': { value: 'skip|run' },
  ttl: { value: 'DURATION' },
  help: { short: 'h' },
};

const ENROLL_OPTIONS: OptionSpecs = {
  token: { value: 'TOKEN', short: 't' },
  coordinator: { value: 'ADDR' },
  dir: { value: 'DIR', short: 'd' },
  help: { short: 'h' },
};

/** The commands, their help and their options: the dispatcher, `help COMMAND`, completion and docs/cli.md. */
export const AGENT_COMMANDS: Readonly<Record<string, { help: string; options: OptionSpecs }>> = {
  run: { help: RUN_HELP, options: CONFIG_OPTIONS },
  exec: { help: EXEC_HELP, options: EXEC_OPTIONS },
  check: { help: CHECK_HELP, options: CONFIG_OPTIONS },
  enroll: { help: ENROLL_HELP, options: ENROLL_OPTIONS },
  'freeze-notice': { help: FREEZE_NOTICE_HELP, options: FREEZE_OPTIONS },
  'install-fsfreeze-hook': { help: INSTALL_HOOK_HELP, options: INSTALL_HOOK_OPTIONS },
};

export { HELP as AGENT_HELP };

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  log: Logger;
  /** exec tells people what happens through its own stderr lines; its log shows errors only unless HEADROOM_LOG says more. */
  execLog: Logger;
}

async function runCommand(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, CONFIG_OPTIONS);
  if (values.help) {
    io.out(RUN_HELP);
    return 0;
  }
  const config = loadAgentConfig((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH);
  let daemon;
  try {
    daemon = startDaemon({ config, log: io.log });
  } catch (err) {
    throw new ConfigError(config.file, [{ key: '', message: (err as Error).message }]);
  }
  const d = daemon;
  try {
    await d.controlReady;
  } catch (err) {
    await d.stop('its control socket cannot be set up');
    throw err;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      void d.stop(signal).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  io.log.info('headroom-agent stopped');
  return 0;
}

async function execCommand(args: string[], io: Io): Promise<number> {
  const { values, rest: command } = parse(args, EXEC_OPTIONS, { rest: true });
  if (values.help) {
    io.out(EXEC_HELP);
    return 0;
  }
  const v = values as Record<string, string | undefined>;
  const plan = planExec(
    {
      job: v.job,
      config: v.config,
      window: v.window,
      expectedDuration: v['expected-duration'],
      coordinator: v.coordinator,
      vm: v.vm,
      host: v.host,
      priority: v.priority,
      killGrace: v['kill-grace'],
      onUnreachable: v['on-unreachable'],
      ttl: v.ttl,
    },
    [...command],
  );
  return runExec(plan, { log: io.execLog, say: (line) => io.err(`${line}\n`) });
}

async function enrollCommand(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, ENROLL_OPTIONS);
  if (values.help) {
    io.out(ENROLL_HELP);
    return 0;
  }
  const v = values as Record<string, string | undefined>;
  if (!v.token) throw new UsageError('missing --token (from headroomctl enroll create)');
  if (!v.coordinator) throw new UsageError('missing --coordinator HOST:PORT');
  // Loaded here: the X.509 library would cost run and exec their start-up time.
  const { EnrollError, enroll } = await import('./enroll');
  let r;
  try {
    r = await enroll({ token: v.token, coordinator: v.coordinator, dir: v.dir ?? DEFAULT_ENROLL_DIR, log: io.log });
  } catch (err) {
    if (!(err instanceof EnrollError)) throw err;
    io.err(`headroom-agent: ${err.message}\n`);
    return 1;
  }
  const id = r.identity;
  io.out(
    `enrolled as ${id.role === 'ROLE_AGENT' ? `the agent of VM ${id.vm} on host ${id.host}` : `${role.show(id.role).toLowerCase()} ${id.host || id.name}`}, certificate valid until ${formatClock(r.notAfter, Date.now())}\n`,
  );
  io.out(
    `in agent.yaml:\ncoordinator: ${v.coordinator}\n${id.vm ? `vm: ${id.vm}\n` : ''}host: ${id.host}\ntls:\n  caFile: ${r.files.caFile}\n  certFile: ${r.files.certFile}\n  keyFile: ${r.files.keyFile}\n`,
  );
  return 0;
}

function checkCommand(args: string[], io: Io): number {
  const { values } = parse(args, CONFIG_OPTIONS);
  if (values.help) {
    io.out(CHECK_HELP);
    return 0;
  }
  const config = loadAgentConfig((values.config as string | undefined) ?? DEFAULT_CONFIG_PATH);
  io.out(`${config.file}: OK, coordinator ${config.coordinator}, ${config.jobs.length} job(s)\n`);
  // Valid for a coordinator serving server-only TLS, but a coordinator with its own CA (pki init) refuses it.
  if (config.tls?.caFile && !config.tls.certFile) {
    io.err(
      `headroom-agent: warning: ${config.file}: tls has caFile but no certFile/keyFile: a coordinator with its own CA (pki init) requires a client certificate it issued and refuses this agent; run 'headroom-agent enroll --token …' and add the certFile and keyFile lines it prints\n`,
    );
  }
  const now = Date.now();
  for (const j of config.jobs) {
    const runs = nextRuns(j.schedule, j.name, now, CHECK_NEXT_RUNS).map((t) => formatClock(t, now));
    io.out(
      `  ${j.name}: ${formatCommand(j.command)}\n    schedule ${j.schedule}, window ${formatDuration(j.windowMs)}; next runs ${runs.join(', ')}\n`,
    );
  }
  return 0;
}

/** How many of each job's next runs `check` shows: enough to see the schedule's rhythm. */
const CHECK_NEXT_RUNS = 3;

/** The `count` occurrences of `schedule` after `now`, Unix ms. */
function nextRuns(schedule: string, seed: string, now: number, count: number): number[] {
  const runs: number[] = [];
  for (let t = now; runs.length < count;) runs.push((t = nextOccurrence(schedule, t, seed)));
  return runs;
}

/** Runs the command line and returns the exit code. */
export async function main(argv: string[], io?: Partial<Io>): Promise<number> {
  const full: Io = {
    out: io?.out ?? ((t) => process.stdout.write(t)),
    err: io?.err ?? ((t) => process.stderr.write(t)),
    log: io?.log ?? createLogger(),
    execLog: io?.execLog ?? io?.log ?? createLogger(process.env.HEADROOM_LOG ? {} : { level: 'error' }),
  };
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest, full);
      case 'exec':
        return await execCommand(rest, full);
      case 'check':
        return checkCommand(rest, full);
      case 'enroll':
        return await enrollCommand(rest, full);
      case 'freeze-notice':
        return await freezeNoticeCommand(rest, full);
      case 'install-fsfreeze-hook':
        return installHookCommand(rest, full, selfCommand());
      case 'completion':
        return completion(rest, full);
      case 'version':
      case '--version':
        full.out(`${PROGRAM} ${AGENT_VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h': {
        full.out(AGENT_COMMANDS[rest[0]]?.help ?? HELP);
        return command === undefined ? EXIT_USAGE : EXIT_OK;
      }
      default:
        throw new UsageError(`unknown command "${command}"${didYouMean(command, [...WORDS])}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      const topic = command in AGENT_COMMANDS ? `${command} ` : '';
      full.err(formatUsageError(PROGRAM, err.message, `${PROGRAM} ${topic}--help`));
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      full.err(`headroom-agent: invalid configuration:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return EXIT_CONFIG;
    }
    full.log.error('unexpected failure', { error: err as Error });
    return EXIT_FAILURE;
  }
}

/** Every command word, for "did you mean". */
const WORDS = [...Object.keys(AGENT_COMMANDS), 'completion', 'version', 'help'];

/** `headroom-agent completion bash|zsh`: the script, from AGENT_COMMANDS. */
function completion(words: readonly string[], io: Io): number {
  const shell = words[0];
  if (words.length !== 1 || !SHELLS.includes(shell as Shell)) {
    throw new UsageError(`completion: expected one of ${SHELLS.join(', ')}`);
  }
  const commands = [
    ...Object.entries(AGENT_COMMANDS).map(([name, c]) => ({
      name,
      options: Object.keys(c.options).map((o) => `--${o}`),
    })),
    { name: 'completion', options: [...SHELLS] },
    { name: 'version', options: [] },
    { name: 'help', options: Object.keys(AGENT_COMMANDS) },
  ];
  io.out(completionScript({ program: PROGRAM, commands, globalOptions: [] }, shell as Shell));
  return EXIT_OK;
}

/** True inside the single executable, where the bundle is the main script whatever `require.main` says. */
function isSea(): boolean {
  try {
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false;
  }
}

/** How to run this agent again from a bare environment (the fsfreeze hook). */
function selfCommand(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, path.resolve(process.argv[1])];
}

if (require.main === module || isSea()) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

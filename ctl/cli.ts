/**
 * headroomctl's dispatcher: global options, finding the command, help and usage, the connection, and
 * turning every failure into a message on stderr and an exit code. Process-free (main.ts supplies the
 * process), so tests can run a whole command line in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  type Clients,
  DEFAULT_ADDRESS,
  clientCredentials,
  connect,
  parseCoordinators,
  usesTls,
} from '../common/client/connection';
import type { Logger } from '../common/util/log';
import {
  type OptionSpec,
  ParsedArgs,
  didYouMean,
  formatUsageError,
  parseArgs,
  parseString,
  wantsHelp,
} from '../common/util/cli-args';
import type { Command } from './command';
import { agentsCommand } from './commands/agents';
import { backupCancelCommand, backupRunsCommand, backupShowCommand, backupStartCommand } from './commands/backup';
import { backupsCommand } from './commands/backups';
import { enrollCreateCommand } from './commands/enroll';
import { historyCommand } from './commands/history';
import { holdCommand } from './commands/hold';
import { hostBackupCommand } from './commands/host-backup';
import { pauseCommand, resumeCommand } from './commands/pause';
import { pkiInitCommand, pkiListCommand, pkiRevokeCommand, pkiRotateCommand } from './commands/pki';
import { pkiReissueServerCommand, pkiRenewCommand } from './commands/pki-renewal';
import { planCommand } from './commands/plan';
import { policyGetCommand, policySetCommand } from './commands/policy';
import { pruneCommand } from './commands/prune';
import { qmpBackupCommand } from './commands/qmp-backup';
import { libvirtBackupCommand } from './commands/libvirt-backup';
import { restoreCommand } from './commands/restore';
import { revokeCommand } from './commands/revoke';
import { statusCommand } from './commands/status';
import { tokensCommand } from './commands/tokens';
import { verifyCommand } from './commands/verify';
import { type Context, type Io, createContext } from './context';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/util/exit-codes';
import { CTL_TLS_SETTINGS, RpcError, describeRpcError } from './errors';
import { UsageError } from '../common/util/usage-error';
import { formatTable } from './table';
import { SHELLS, type Shell, completionScript } from '../common/util/completion';

export const PROGRAM = 'headroomctl';

export const COMMANDS: readonly Command[] = [
  statusCommand,
  agentsCommand,
  tokensCommand,
  historyCommand,
  planCommand,
  pauseCommand,
  resumeCommand,
  revokeCommand,
  policyGetCommand,
  policySetCommand,
  hostBackupCommand,
  holdCommand,
  qmpBackupCommand,
  libvirtBackupCommand,
  backupsCommand,
  verifyCommand,
  backupShowCommand,
  pruneCommand,
  restoreCommand,
  backupStartCommand,
  backupCancelCommand,
  backupRunsCommand,
  pkiInitCommand,
  pkiListCommand,
  pkiRevokeCommand,
  pkiRotateCommand,
  pkiRenewCommand,
  pkiReissueServerCommand,
  enrollCreateCommand,
];

/** Commands whose name is two words. */
const GROUPS = new Set(COMMANDS.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]));

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'coordinator',
    value: 'ADDR',
    help: `the coordinator, host:port, or a cluster's members IP:port,IP:port,… (default: $HEADROOM_COORDINATOR, else ${DEFAULT_ADDRESS})`,
    parse: parseString,
  },
  {
    name: 'pki-dir',
    value: 'DIR',
    help: "act as the admin identity of 'pki init --dir DIR': its ca.pem, admin.pem and admin.key",
    parse: parseString,
  },
  {
    name: 'tls-ca',
    value: 'FILE',
    help: "CA certificate (PEM) to check the coordinator's certificate",
    parse: parseString,
  },
  { name: 'tls-cert', value: 'FILE', help: 'client certificate (PEM) for mutual TLS', parse: parseString },
  { name: 'tls-key', value: 'FILE', help: "the client certificate's private key (PEM)", parse: parseString },
  { name: 'json', help: "print the coordinator's messages as JSON" },
  { name: 'help', help: 'show help (also: headroomctl <command> --help)' },
  { name: 'version', help: 'show the version' },
];

export interface CliEnvironment {
  io: Io;
  /** Environment variables (HEADROOM_COORDINATOR). */
  env: NodeJS.ProcessEnv;
  now: () => number;
  log: Logger;
  onInterrupt: Context['onInterrupt'];
  /** Opens the connection; defaults to common/client/connection's clientCredentials + connect. */
  open?: (address: string, tls: { caFile?: string; certFile?: string; keyFile?: string }, log: Logger) => Clients;
}

export function version(): string {
  // dist/ctl → the repository's package.json; tsc does not copy it into dist.
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8'));
    return String(pkg.version);
  } catch {
    return 'unknown';
  }
}

function optionLines(options: readonly OptionSpec[]): string {
  return formatTable(
    [{ header: '' }, { header: '' }],
    options.map((o) => [`  --${o.name}${o.value ? ` ${o.value}` : ''}`, o.help]),
    { header: false },
  );
}

export function usageLine(cmd: Command): string {
  const rest = cmd.synopsis ? ` ${cmd.synopsis}` : '';
  return `Usage: ${PROGRAM} [global options] ${cmd.name}${rest}`;
}

/** The Examples: section of a help text, each example indented under it. */
export function examplesSection(examples: readonly string[]): string {
  return ['Examples:', ...examples.map((e) => `  ${e}`)].join('\n');
}

export function commandHelp(cmd: Command): string {
  const parts = [usageLine(cmd), '', cmd.summary.charAt(0).toUpperCase() + cmd.summary.slice(1) + '.'];
  if (cmd.description) parts.push('', cmd.description);
  if (cmd.options.length) parts.push('', 'Options:', optionLines(cmd.options));
  parts.push('', 'Global options:', optionLines(GLOBAL_OPTIONS));
  parts.push('', examplesSection(cmd.examples.map((e) => `${PROGRAM} ${e}`)));
  return parts.join('\n');
}

export function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `${PROGRAM}: administer a Headroom backup coordinator`,
    '',
    `Usage: ${PROGRAM} [global options] <command> [options]`,
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${'completion'.padEnd(width)}  print the shell completion script: completion bash|zsh`,
    `  ${'version'.padEnd(width)}  print the version`,
    '',
    'Global options (accepted before or after the command):',
    optionLines(GLOBAL_OPTIONS),
    '',
    'Exit status: 0 done; 1 the coordinator refused or could not be reached; 64 usage error.',
    "host-backup exits with its command's status, or 75 when no token could be had in time.",
    '',
    examplesSection([
      `${PROGRAM} --pki-dir /etc/headroom/pki status`,
      `${PROGRAM} history --follow`,
      `${PROGRAM} policy set --max-guest 2 --lease-ttl 1m`,
      `source <(${PROGRAM} completion bash)`,
    ]),
    '',
    `Run '${PROGRAM} <command> --help' for a command's options.`,
  ].join('\n');
}

/** Global options that take a value, to step over them while looking for the command word. */
const GLOBAL_WITH_VALUE = new Set(GLOBAL_OPTIONS.filter((o) => o.parse).map((o) => `--${o.name}`));

/**
 * Splits argv into the command and the rest (options before and after the command word, in order).
 * The command is the first word that is neither an option nor an option's value; for a group (policy)
 * the word after it names the subcommand.
 */
function findCommand(argv: readonly string[]): { name?: string; group?: string; others: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (GLOBAL_WITH_VALUE.has(a)) i++;
      continue;
    }
    const before = argv.slice(0, i);
    if (GROUPS.has(a)) {
      const sub = argv[i + 1];
      if (sub !== undefined && !sub.startsWith('-')) {
        return { name: `${a} ${sub}`, group: a, others: [...before, ...argv.slice(i + 2)] };
      }
      return { group: a, others: [...before, ...argv.slice(i + 1)] };
    }
    return { name: a, others: [...before, ...argv.slice(i + 1)] };
  }
  return { others: [...argv] };
}

function groupUsage(group: string): string {
  const subs = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return (
    subs.map((c) => usageLine(c)).join('\n') +
    `\n\nRun '${PROGRAM} ${group} <${subs.map((c) => c.name.split(' ')[1]).join('|')}> --help' for details.`
  );
}

/**
 * Runs one command line (argv without node and the script) and resolves to the exit code. Never
 * throws: every failure is printed on stderr.
 */
export async function runCli(argv: readonly string[], env: CliEnvironment): Promise<number> {
  const { io } = env;
  /** One line and where the help is (`help` names the command whose help it is). */
  const fail = (message: string, help = ''): number => {
    io.stderr(formatUsageError(PROGRAM, message, `${PROGRAM} ${help ? `${help} ` : ''}--help`));
    return EXIT_USAGE;
  };

  let found = findCommand(argv);
  if (found.name === 'version') {
    io.stdout(`${PROGRAM} ${version()}\n`);
    return EXIT_OK;
  }
  if (found.name === 'completion') return completion(found.others, io);
  if (found.name === 'help') {
    // `headroomctl help [command]` is `headroomctl [command] --help`.
    found = findCommand(found.others);
    found.others.push('--help');
  }

  if (found.name === undefined && found.group === undefined) {
    if (wantsHelp(found.others)) {
      io.stdout(`${globalHelp()}\n`);
      return EXIT_OK;
    }
    let args: ParsedArgs;
    try {
      args = parseArgs(found.others, GLOBAL_OPTIONS);
    } catch (err) {
      return fail((err as Error).message);
    }
    if (args.flag('version')) {
      io.stdout(`${PROGRAM} ${version()}\n`);
      return EXIT_OK;
    }
    return fail('no command given');
  }

  const cmd = COMMANDS.find((c) => c.name === found.name);
  if (!cmd) {
    if (found.group !== undefined) {
      if (wantsHelp(found.others) && found.name === undefined) {
        io.stdout(`${groupUsage(found.group)}\n`);
        return EXIT_OK;
      }
      const sub = found.name?.split(' ')[1];
      const subs = COMMANDS.filter((c) => c.name.startsWith(`${found.group} `)).map((c) => c.name.split(' ')[1]);
      return fail(
        sub === undefined
          ? `${found.group}: missing subcommand (one of ${subs.join(', ')})`
          : `${found.group}: unknown subcommand "${sub}"${didYouMean(sub, subs)}`,
        found.group,
      );
    }
    const words = [...new Set([...COMMANDS.map((c) => c.name.split(' ')[0]), 'help', 'version'])];
    return fail(`unknown command "${found.name}"${didYouMean(found.name!, words)}`);
  }

  if (wantsHelp(found.others)) {
    io.stdout(`${commandHelp(cmd)}\n`);
    return EXIT_OK;
  }

  let args: ParsedArgs;
  try {
    args = parseArgs(found.others, [...GLOBAL_OPTIONS, ...cmd.options], {
      positionals: cmd.positionals,
      rest: cmd.rest,
    });
    if (args.flag('version')) {
      io.stdout(`${PROGRAM} ${version()}\n`);
      return EXIT_OK;
    }
    for (const p of (cmd.positionals ?? []).slice(args.positionals.length)) throw new UsageError(`missing ${p}`);
  } catch (err) {
    return fail((err as Error).message, cmd.name);
  }

  const coordinator = args.get<string>('coordinator') ?? (env.env.HEADROOM_COORDINATOR || DEFAULT_ADDRESS);
  try {
    parseCoordinators(coordinator);
  } catch (err) {
    return fail(`--coordinator: ${(err as Error).message}`, cmd.name);
  }
  // --pki-dir names the admin identity pki init made; explicit --tls-* files win over it.
  const pki = args.get<string>('pki-dir');
  const tls = {
    caFile: args.get<string>('tls-ca') ?? (pki && path.join(pki, 'ca.pem')),
    certFile: args.get<string>('tls-cert') ?? (pki && path.join(pki, 'admin.pem')),
    keyFile: args.get<string>('tls-key') ?? (pki && path.join(pki, 'admin.key')),
  };
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    return fail('--tls-cert and --tls-key go together', cmd.name);
  }
  for (const [option, file] of [
    ['tls-ca', tls.caFile],
    ['tls-cert', tls.certFile],
    ['tls-key', tls.keyFile],
  ] as const) {
    if (file === undefined) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read';
      return fail(`--${option} ${file}: ${why}`, cmd.name);
    }
  }
  const open = env.open ?? ((address, files, log) => connect(address, clientCredentials(address, { tls: files }, log)));

  const connection = { address: coordinator, tls: usesTls(coordinator, { tls }), names: CTL_TLS_SETTINGS };
  const ctx = createContext({
    coordinator,
    connection,
    tls,
    json: args.flag('json'),
    width: io.columns ?? (Number(env.env.COLUMNS) || undefined),
    io,
    log: env.log,
    now: env.now,
    onInterrupt: env.onInterrupt,
    open: () => {
      try {
        return open(coordinator, tls, env.log);
      } catch (err) {
        throw new ConnectionSetupError((err as Error).message);
      }
    },
  });
  try {
    return await cmd.run(ctx, args);
  } catch (err) {
    if (err instanceof UsageError) return fail(err.message, cmd.name);
    if (err instanceof RpcError) {
      io.stderr(`${PROGRAM}: ${describeRpcError(err, connection)}\n`);
      return EXIT_FAILURE;
    }
    if (err instanceof ConnectionSetupError) return fail(err.message, cmd.name);
    io.stderr(`${PROGRAM}: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT_FAILURE;
  } finally {
    ctx.close();
  }
}

/** `headroomctl completion bash|zsh`: the script, from the command table. */
function completion(words: readonly string[], io: Io): number {
  const shell = words[0];
  if (words.length !== 1 || !SHELLS.includes(shell as Shell)) {
    io.stderr(formatUsageError(PROGRAM, `completion: expected one of ${SHELLS.join(', ')}`, `${PROGRAM} --help`));
    return EXIT_USAGE;
  }
  const dashed = (options: readonly OptionSpec[]) => options.map((o) => `--${o.name}`);
  const commands = [
    ...COMMANDS.map((c) => ({ name: c.name, options: dashed(c.options) })),
    { name: 'completion', options: [...SHELLS] },
    { name: 'version', options: [] },
    { name: 'help', options: COMMANDS.map((c) => c.name.split(' ')[0]) },
  ];
  io.stdout(completionScript({ program: PROGRAM, commands, globalOptions: dashed(GLOBAL_OPTIONS) }, shell as Shell));
  return EXIT_OK;
}

/** The connection could not even be set up: plaintext to a remote address, an unreadable TLS file. */
class ConnectionSetupError extends Error {}

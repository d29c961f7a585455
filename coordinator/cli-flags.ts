/**
 * `headroom-coordinator`'s command line: its help, its flags (each one a key of the config file, which
 * the flags override) and the shared parser's rules (common/util/cli-args.ts). Apart from main.ts so
 * that docs/cli.md is generated from the same help without starting a server.
 */
import { type OptionSpec, didYouMean, parseArgs, parseString, parseUint32, wantsHelp } from '../common/util/cli-args';
import { parseFlagDuration } from '../common/util/duration';
import { UsageError } from '../common/util/usage-error';
import { loadConfigFile } from './config';

export const USAGE = `Usage: headroom-coordinator [options]

Runs the Headroom coordinator: grants time-slotted backup tokens so that guest-level and
hypervisor-level backups never run together on a host.

Options:
  --config FILE          YAML config file (keys: listen, database, host, durability, tls, pki, plaintext, policy,
                         hypervisorJobs, backups)
  --listen ADDR          address to serve on (default 127.0.0.1:7400; non-loopback needs --pki-dir or TLS files)
  --db FILE              SQLite database file (default /var/lib/headroom/headroom.db)
  --host NAME            this host's name (default: the machine's hostname)
  --durability MODE      full (fsync each commit, default) or normal (survives process crashes only)
  --pki-dir DIR          the coordinator's own CA, made by 'headroomctl pki init --dir DIR': mutual TLS,
                         enrolment of agents, roles on every call, revocation
  --tls-cert FILE        server certificate (PEM), made elsewhere (instead of --pki-dir)
  --tls-key FILE         server private key (PEM)
  --tls-client-ca FILE   CA for client certificates: require them, and take roles from their headroom:// URI
  --tls-allow-anonymous  without --tls-client-ca on a non-loopback address: let every caller make every call
  --plaintext            serve without TLS: allowed on a loopback address only, never by default
  --lease-ttl DURATION   default lease TTL for new hosts (default 30s)
  --max-guest N          concurrent GUEST tokens per new host (default 4)
  --max-hypervisor N     concurrent HYPERVISOR tokens per new host (default 1)
  --allow-overrun        let holders run past their window's end
  --report-interval DURATION  how often agents report load (default 10s)
  -h, --help             show this help
  --version              print the version (also: headroom-coordinator version)

With --plaintext (and no --pki-dir or TLS files) it serves plaintext on loopback only, with a warning:
callers are not identified and every call is allowed, so any process on this machine can act as admin.

Environment: HEADROOM_LOG=debug|info|warn|error, HEADROOM_LOG_FORMAT=json
Durations take a unit: 500ms, 30s, 5m, 1h30m.
Prints "listening on HOST:PORT" on stdout once it serves.

Examples:
  headroom-coordinator --config /etc/headroom/coordinator.yaml
  headroom-coordinator --listen 0.0.0.0:7400 --pki-dir /etc/headroom/pki --db /var/lib/headroom/headroom.db
  headroom-coordinator --plaintext --db ./headroom.db --lease-ttl 1m --max-guest 2`;

export const PROGRAM = 'headroom-coordinator';

/** The flags, for the shared parser; `key` is the config file's key each one sets (`policy`: under policy). */
const FLAGS: readonly (OptionSpec & { key?: string; section?: 'policy' | 'tls' })[] = [
  { name: 'config', value: 'FILE', help: '', parse: parseString },
  { name: 'listen', value: 'ADDR', help: '', parse: parseString, key: 'listen' },
  { name: 'db', value: 'FILE', help: '', parse: parseString, key: 'database' },
  { name: 'plaintext', help: '', key: 'plaintext' },
  { name: 'host', value: 'NAME', help: '', parse: parseString, key: 'host' },
  { name: 'durability', value: 'MODE', help: '', parse: parseString, key: 'durability' },
  { name: 'pki-dir', value: 'DIR', help: '', parse: parseString },
  { name: 'tls-cert', value: 'FILE', help: '', parse: parseString, key: 'certFile', section: 'tls' },
  { name: 'tls-key', value: 'FILE', help: '', parse: parseString, key: 'keyFile', section: 'tls' },
  { name: 'tls-client-ca', value: 'FILE', help: '', parse: parseString, key: 'clientCaFile', section: 'tls' },
  { name: 'tls-allow-anonymous', help: '', key: 'allowAnonymous', section: 'tls' },
  // Durations in milliseconds, which the config file reads as such: the unit was required on the line.
  { name: 'lease-ttl', value: 'DURATION', help: '', parse: parseFlagDuration, key: 'leaseTtl', section: 'policy' },
  { name: 'max-guest', value: 'N', help: '', parse: parseUint32, key: 'maxGuestTokens', section: 'policy' },
  { name: 'max-hypervisor', value: 'N', help: '', parse: parseUint32, key: 'maxHypervisorTokens', section: 'policy' },
  { name: 'allow-overrun', help: '', key: 'allowOverrun', section: 'policy' },
  {
    name: 'report-interval',
    value: 'DURATION',
    help: '',
    parse: parseFlagDuration,
    key: 'reportInterval',
    section: 'policy',
  },
  { name: 'help', short: 'h', help: '' },
  { name: 'version', help: '' },
];

/** What the command line asks for: help, the version, or to run with this config (file and flags merged). */
export type CoordinatorCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  /** databaseSource: where the database path came from, the file or --db, for its error's file and key. */
  | { kind: 'run'; raw: Record<string, unknown>; source: string; databaseSource: string };

/** Parses the command line and reads the config file it names. @throws UsageError, ConfigError */
export function parseCoordinatorArgs(argv: readonly string[]): CoordinatorCommand {
  if (wantsHelp(argv)) return { kind: 'help' };
  const args = parseArgs(argv, FLAGS, { positionals: ['COMMAND'] });
  const word = args.positionals[0];
  if (word !== undefined && word !== 'version') {
    throw new UsageError(
      `unknown command "${word}"${didYouMean(word, ['version'])}: the coordinator takes options only`,
    );
  }
  if (args.flag('version') || word === 'version') return { kind: 'version' };
  const source = args.get<string>('config') ?? 'command line';
  const raw: Record<string, unknown> = args.has('config') ? loadConfigFile(source) : {};
  const merged: Record<string, unknown> = { ...raw };
  const sections: Record<string, Record<string, unknown>> = {};
  for (const flag of FLAGS) {
    if (flag.key === undefined || !args.has(flag.name)) continue;
    if (flag.section) (sections[flag.section] ??= { ...(raw[flag.section] as object) })[flag.key] = args.get(flag.name);
    else merged[flag.key] = args.get(flag.name);
  }
  if (args.has('pki-dir')) merged.pki = { dir: args.get<string>('pki-dir') };
  const databaseSource = args.has('db') ? 'command line' : source;
  return { kind: 'run', raw: { ...merged, ...sections }, source, databaseSource };
}

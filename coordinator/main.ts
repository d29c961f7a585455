#!/usr/bin/env node
/**
 * `headroom-coordinator`: the host service. Parses flags (on top of an optional YAML config file), starts
 * the server and stops it cleanly on SIGTERM/SIGINT.
 */
import { createLogger } from '../common/util/log';
import { ConfigError } from '../common/util/config-error';
import { EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/util/exit-codes';
import { UsageError } from '../common/util/usage-error';
import { checkDatabaseDirectory, compileCoordinatorOptions, loadConfigFile } from './config';
import { startServer } from './server';
import { version } from '../package.json';

const USAGE = `Usage: headroom-coordinator [options]

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
  --version              print the version

With --plaintext (and no --pki-dir or TLS files) it serves plaintext on loopback only, with a warning:
callers are not identified and every call is allowed, so any process on this machine can act as admin.

Environment: HEADROOM_LOG=debug|info|warn|error, HEADROOM_LOG_FORMAT=json
Prints "listening on HOST:PORT" on stdout once it serves.`;

const FLAGS: Record<string, { key: string; policy?: boolean; bool?: boolean; number?: boolean }> = {
  '--listen': { key: 'listen' },
  '--db': { key: 'database' },
  '--plaintext': { key: 'plaintext', bool: true },
  '--host': { key: 'host' },
  '--durability': { key: 'durability' },
  '--lease-ttl': { key: 'leaseTtl', policy: true },
  '--max-guest': { key: 'maxGuestTokens', policy: true, number: true },
  '--max-hypervisor': { key: 'maxHypervisorTokens', policy: true, number: true },
  '--allow-overrun': { key: 'allowOverrun', policy: true, bool: true },
  '--report-interval': { key: 'reportInterval', policy: true },
};
const TLS_FLAGS: Record<string, string> = {
  '--tls-cert': 'certFile',
  '--tls-key': 'keyFile',
  '--tls-client-ca': 'clientCaFile',
};

function parseArgs(argv: string[]): { raw: Record<string, unknown>; source: string; databaseSource: string } {
  let raw: Record<string, unknown> = {};
  let source = 'command line';
  const overrides: Record<string, unknown> = {};
  const policy: Record<string, unknown> = {};
  const tls: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(EXIT_OK);
    }
    if (arg === '--version') {
      process.stdout.write(`headroom-coordinator ${version}\n`);
      process.exit(EXIT_OK);
    }
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--config') {
      source = value();
      raw = loadConfigFile(source);
    } else if (TLS_FLAGS[arg]) tls[TLS_FLAGS[arg]] = value();
    else if (arg === '--tls-allow-anonymous') tls.allowAnonymous = true;
    else if (arg === '--pki-dir') overrides.pki = { dir: value() };
    else if (FLAGS[arg]) {
      const f = FLAGS[arg];
      const v = f.bool ? true : f.number ? Number(value()) : value();
      (f.policy ? policy : overrides)[f.key] = v;
    } else throw new UsageError(`unknown option ${arg}`);
  }
  const merged: Record<string, unknown> = { ...raw, ...overrides };
  if (Object.keys(policy).length > 0) merged.policy = { ...(raw.policy as object), ...policy };
  if (Object.keys(tls).length > 0) merged.tls = { ...(raw.tls as object), ...tls };
  // --db wins over the file's database key: a problem with it is the command line's.
  return { raw: merged, source, databaseSource: 'database' in overrides ? 'command line' : source };
}

async function main(): Promise<void> {
  const log = createLogger();
  const { raw, source, databaseSource } = parseArgs(process.argv.slice(2));
  const options = compileCoordinatorOptions(raw, source);
  checkDatabaseDirectory(options, databaseSource);
  const server = await startServer(options, log);
  log.info('coordinator started', { address: server.address, host: options.host, database: options.database, version });
  process.stdout.write(`listening on ${server.address}\n`);
  const shutdown = (signal: string) => {
    log.info('stopping', { signal });
    server.stop().then(() => process.exit(EXIT_OK));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e) => {
  if (e instanceof UsageError) {
    process.stderr.write(`headroom-coordinator: ${e.message}\n\n${USAGE}\n`);
    process.exit(EXIT_USAGE);
  }
  if (e instanceof ConfigError) {
    process.stderr.write(`headroom-coordinator: invalid configuration:\n  ${e.problems.join('\n  ')}\n`);
    process.exit(EXIT_CONFIG);
  }
  process.stderr.write(`headroom-coordinator: ${(e as Error).message}\n`);
  process.exit(EXIT_FAILURE);
});

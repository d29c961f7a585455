#!/usr/bin/env node
/**
 * `headroom-coordinator`: the host service. Parses flags (on top of an optional YAML config file), starts
 * the server and stops it cleanly on SIGTERM/SIGINT; SIGHUP reloads its certificate files.
 */
import { type Logger, createLogger } from '../common/util/log';
import { ConfigError } from '../common/util/config-error';
import { EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../common/util/exit-codes';
import { UsageError } from '../common/util/usage-error';
import { formatUsageError } from '../common/util/cli-args';
import { PROGRAM, USAGE, parseCoordinatorArgs } from './cli-flags';
import { checkDatabaseDirectory, compileCoordinatorOptions } from './config';
import { type RunningServer, STOP_BOUND_MS, startServer } from './server';
import { startMember } from './cluster/member';
import { version } from '../package.json';

async function main(): Promise<void> {
  const log = createLogger();
  const command = parseCoordinatorArgs(process.argv.slice(2));
  if (command.kind !== 'run') {
    process.stdout.write(command.kind === 'help' ? `${USAGE}\n` : `${PROGRAM} ${version}\n`);
    process.exit(EXIT_OK);
  }
  const { raw, source, databaseSource } = command;
  const options = compileCoordinatorOptions(raw, source);
  const { etcd } = options;
  if (etcd) {
    await runMember({ ...options, etcd }, log);
    return;
  }
  checkDatabaseDirectory(options, databaseSource);
  const server = await startServer(options, log);
  log.info('coordinator started', {
    address: server.address,
    host: options.host,
    database: options.database,
    version,
    ...(server.httpUrl ? { http: server.httpUrl } : {}),
  });
  // Before the `listening on` line, which tells scripts that everything is served.
  if (server.httpUrl) process.stdout.write(`http on ${server.httpUrl}\n`);
  process.stdout.write(`listening on ${server.address}\n`);
  stopOnSignals(server, log);
}

/** Cluster mode: a member forwards to the leader, and serves the coordination when it is elected. */
async function runMember(options: Parameters<typeof startMember>[0], log: Logger): Promise<void> {
  const member = await startMember(options, log);
  log.info('cluster member started', {
    address: member.address,
    host: options.host,
    cluster: options.etcd.cluster,
    etcd: options.etcd.endpoints.join(','),
    version,
  });
  process.stdout.write(`listening on ${member.address}\n`);
  stopOnSignals(member, log);
}

function stopOnSignals(server: Pick<RunningServer, 'stop' | 'reloadCertificates'>, log: Logger): void {
  const shutdown = (signal: string) => {
    log.info('stopping: waiting callers are told so, sessions end, pending commits are written', { signal });
    server.stop().then(
      ({ forced }) => {
        if (forced) log.warn(`stopped by force after ${STOP_BOUND_MS / 1000}s: calls or backup runs had not ended`);
        else log.info('stopped');
        process.exit(EXIT_OK);
      },
      (e) => {
        log.error('could not stop cleanly', { error: e as Error });
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  // After `headroomctl pki reissue-server`: new connections get the new certificate, sessions stay up.
  process.on('SIGHUP', () => server.reloadCertificates());
}

main().catch((e) => {
  if (e instanceof UsageError) {
    process.stderr.write(formatUsageError(PROGRAM, e.message, `${PROGRAM} --help`));
    process.exit(EXIT_USAGE);
  }
  if (e instanceof ConfigError) {
    process.stderr.write(`headroom-coordinator: invalid configuration:\n  ${e.problems.join('\n  ')}\n`);
    process.exit(EXIT_CONFIG);
  }
  process.stderr.write(`headroom-coordinator: ${(e as Error).message}\n`);
  process.exit(EXIT_FAILURE);
});

/**
 * Throwaway PostgreSQL 15 and MariaDB servers for the quiesce hook tests: a temp data directory, a unix
 * socket in a temp directory, no TCP. Each helper throws, naming the Debian package, when the server is not
 * installed here.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../../../helpers/coordinator-process';
import { waitFor } from '../../../helpers/wait';
import { requireTool } from '../../../helpers/require-tool';

const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface TempServer {
  /** The socket directory (PostgreSQL) or socket file (MariaDB). */
  socket: string;
  port: number;
  /** Runs SQL in a fresh client session; returns its output (tuples only, unaligned / batch). */
  sql(statement: string): string;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root: the cluster belongs to `postgres`; local connections are trusted. */
export async function startPostgres(port = 5499): Promise<TempServer> {
  requireTool(path.join(PG_BIN, 'initdb'), 'postgresql');
  requireTool('psql', 'postgresql');
  const dir = tempDir('headroom-pg-');
  execFileSync('chown', ['postgres', dir]);
  const data = path.join(dir, 'data');
  const asPostgres = (cmd: string, args: string[]) =>
    execFileSync('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, cmd), ...args], { stdio: 'pipe' });
  asPostgres('initdb', ['-D', data, '--auth=trust', '-U', 'postgres']);
  asPostgres('pg_ctl', [
    '-D',
    data,
    '-w',
    '-l',
    path.join(dir, 'log'),
    '-o',
    `-k ${dir} -c listen_addresses= -p ${port}`,
    'start',
  ]);
  return {
    socket: dir,
    port,
    sql: (statement) =>
      execFileSync(
        'psql',
        [
          '--no-psqlrc',
          '--quiet',
          '--no-align',
          '--tuples-only',
          '--set',
          'ON_ERROR_STOP=1',
          '-h',
          dir,
          '-p',
          String(port),
          '-U',
          'postgres',
          '-d',
          'postgres',
          '-c',
          statement,
        ],
        {
          encoding: 'utf8',
        },
      ).trim(),
    async stop() {
      asPostgres('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** MariaDB as root (`--user=root`), root authenticated by the unix socket. */
export async function startMariadb(): Promise<TempServer> {
  requireTool('/usr/sbin/mariadbd', 'mariadb-server');
  requireTool('mariadb', 'mariadb-server');
  const dir = tempDir('headroom-mariadb-');
  const data = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  execFileSync(
    'mariadb-install-db',
    [`--datadir=${data}`, '--user=root', '--skip-test-db', '--auth-root-authentication-method=socket'],
    { stdio: 'pipe' },
  );
  const server = spawn(
    '/usr/sbin/mariadbd',
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      '--skip-networking',
      '--user=root',
      `--log-error=${path.join(dir, 'error.log')}`,
    ],
    { stdio: 'ignore' },
  );
  const sql = (statement: string) =>
    execFileSync('mariadb', [`--socket=${socket}`, '--user=root', '--batch', '--skip-column-names', '-e', statement], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  await waitFor(
    () => {
      try {
        sql('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    30_000,
    'mariadbd accepting connections',
  );
  return {
    socket,
    port: 0,
    sql,
    async stop() {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The built-in PostgreSQL hook: puts the cluster in backup mode through a psql session held open across
 * the freeze, and on thaw ends it and keeps the backup_label it returns.
 *
 * Why pg_backup_start/pg_backup_stop (PostgreSQL 15): it is the only low-level backup API left (the
 * exclusive mode is gone), and it is tied to the session that started it — if the agent dies or kills
 * psql, the server aborts the backup by itself, so nothing stays held. `fast => true` makes the server
 * take an immediate checkpoint, which is the flush: recovery from the snapshot starts there and is short.
 * A snapshot taken while the backup runs is a valid base backup only together with the backup_label
 * pg_backup_stop returns and the WAL up to its stop LSN (from the WAL archive). So the label is written
 * to labelDir as TOKEN.backup_label (and TOKEN.tablespace_map when there are tablespaces), to be copied
 * to the restored data directory's root, as the PostgreSQL docs ("Making a Base Backup Using the Low
 * Level API") say. When the snapshot holds the data directory and pg_wal atomically (one disk, or frozen
 * together), it can instead be restored as is, without the label: PostgreSQL then does crash recovery
 * from that checkpoint. wait_for_archive is false: the thaw must not wait on WAL archiving.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PostgresqlQuiesce } from '../config';
import type { FrozenHook, QuiesceHook } from './hook';
import { clientEnv, ProcessRunner } from './process-runner';

const STARTED = '__headroom_backup_started__';
const STOPPED = '__headroom_backup_stopped__';

/** psql's command line for `settings`: no psqlrc, unaligned tuples only, stop at the first error. */
export function psqlArgv(settings: PostgresqlQuiesce): string[] {
  const argv = [settings.psql, '--no-psqlrc', '--quiet', '--no-align', '--tuples-only', '--set', 'ON_ERROR_STOP=1'];
  if (settings.host) argv.push('--host', settings.host);
  if (settings.port !== undefined) argv.push('--port', String(settings.port));
  argv.push('--username', settings.user, '--dbname', settings.database);
  return settings.osUser ? ['runuser', '-u', settings.osUser, '--', ...argv] : argv;
}

/** A token id as a file name: anything but letters, digits, `.`, `_` and `-` becomes `_`. */
const fileSafe = (tokenId: string) => tokenId.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_');

/** SQL string literal. */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

export function postgresqlHook(runner: ProcessRunner, settings: PostgresqlQuiesce): QuiesceHook {
  return {
    name: 'postgresql',
    async freeze(signal, { tokenId }): Promise<FrozenHook> {
      const env = clientEnv(settings.passwordFile, 'PGPASSWORD', {
        PGAPPNAME: 'headroom-quiesce',
        PGCONNECT_TIMEOUT: '5',
      });
      const session = runner.open(psqlArgv(settings), { env });
      let startLsn: string;
      try {
        startLsn = await session.exchange(
          `SELECT pg_backup_start(${literal(`headroom ${tokenId}`)}, fast => true);\n\\echo ${STARTED}\n`,
          STARTED,
          signal,
        );
      } catch (err) {
        session.kill();
        throw new Error(`pg_backup_start failed: ${(err as Error).message}`);
      }
      return {
        message: `checkpoint taken, backup started at ${startLsn}`,
        async thaw(thawSignal) {
          let out: string;
          try {
            out = await session.exchange(
              `SELECT json_build_object('lsn', lsn, 'labelfile', labelfile, 'spcmapfile', spcmapfile) FROM pg_backup_stop(wait_for_archive => false);\n\\echo ${STOPPED}\n`,
              STOPPED,
              thawSignal,
            );
          } catch (err) {
            session.kill();
            throw new Error(
              `pg_backup_stop failed (a snapshot taken since ${startLsn} has no backup_label): ${(err as Error).message}`,
            );
          }
          await session.close(thawSignal).catch(() => session.kill());
          const stop = JSON.parse(out) as { lsn: string; labelfile: string; spcmapfile: string };
          fs.mkdirSync(settings.labelDir, { recursive: true, mode: 0o700 });
          const label = path.join(settings.labelDir, `${fileSafe(tokenId)}.backup_label`);
          fs.writeFileSync(label, stop.labelfile, { mode: 0o600 });
          if (stop.spcmapfile)
            fs.writeFileSync(path.join(settings.labelDir, `${fileSafe(tokenId)}.tablespace_map`), stop.spcmapfile, {
              mode: 0o600,
            });
          return `backup stopped at ${stop.lsn}; its backup_label is in ${label}`;
        },
      };
    },
  };
}

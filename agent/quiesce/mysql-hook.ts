/**
 * The built-in MySQL/MariaDB hook: `FLUSH TABLES WITH READ LOCK` in a client session held open across the
 * freeze (tables flushed and closed, every write blocked), `UNLOCK TABLES` on thaw. Should the agent die or
 * kill the client, the server drops the lock with the connection, so nothing stays held.
 */
import type { MysqlQuiesce } from '../config';
import { checkExecutable } from '../../common/util/find-executable';
import type { FrozenHook, QuiesceHook } from './hook';
import { clientEnv, ProcessRunner } from './process-runner';

const LOCKED = '__headroom_locked__';
const UNLOCKED = '__headroom_unlocked__';

/** The client's command line: batch output, unbuffered, so each answer arrives as it is given. */
export function mysqlArgv(settings: MysqlQuiesce, env: NodeJS.ProcessEnv = process.env): string[] {
  const client = settings.client || (checkExecutable(['mariadb'], env) ? 'mysql' : 'mariadb');
  // --defaults-extra-file must come first, as the client requires.
  const argv = [client, ...(settings.defaultsFile ? [`--defaults-extra-file=${settings.defaultsFile}`] : [])];
  argv.push('--batch', '--skip-column-names', '--unbuffered');
  if (settings.socket) argv.push(`--socket=${settings.socket}`);
  if (settings.host) argv.push(`--host=${settings.host}`);
  if (settings.port !== undefined) argv.push(`--port=${settings.port}`);
  if (settings.user) argv.push(`--user=${settings.user}`);
  return argv;
}

/**
 * `lockWaitSeconds` bounds FLUSH TABLES WITH READ LOCK on the server too: while it waits (for a table
 * lock, a long write), it already blocks every write, and a server that does not notice the killed client
 * would keep waiting.
 */
export function mysqlHook(runner: ProcessRunner, settings: MysqlQuiesce, lockWaitSeconds: number): QuiesceHook {
  return {
    name: 'mysql',
    async freeze(signal): Promise<FrozenHook> {
      const env = clientEnv(settings.passwordFile, 'MYSQL_PWD');
      const session = runner.open(mysqlArgv(settings, env), { env });
      try {
        await session.exchange(
          `SET SESSION lock_wait_timeout = ${Math.max(1, Math.ceil(lockWaitSeconds))};\nFLUSH TABLES WITH READ LOCK;\nSELECT '${LOCKED}';\n`,
          LOCKED,
          signal,
        );
      } catch (err) {
        session.kill();
        throw new Error(`FLUSH TABLES WITH READ LOCK failed: ${(err as Error).message}`);
      }
      return {
        message: 'tables flushed and locked for reading',
        async thaw(thawSignal) {
          try {
            await session.exchange(`UNLOCK TABLES;\nSELECT '${UNLOCKED}';\n`, UNLOCKED, thawSignal);
          } catch (err) {
            session.kill();
            throw new Error(
              `UNLOCK TABLES failed (the lock went with the connection, perhaps before the snapshot): ${(err as Error).message}`,
            );
          }
          await session.close(thawSignal).catch(() => session.kill());
          return 'tables unlocked';
        },
      };
    },
  };
}

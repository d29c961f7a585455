/**
 * The database hooks against real servers (PostgreSQL 15 and MariaDB, throwaway instances on unix
 * sockets) through their real clients (psql, mariadb), as the agent runs them.
 */
import { strict as assert } from 'node:assert';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MysqlQuiesce, PostgresqlQuiesce } from '../../../../agent/config';
import { HookQuiescer } from '../../../../agent/quiesce/hook-quiescer';
import type { QuiesceHook } from '../../../../agent/quiesce/hook';
import { mysqlHook } from '../../../../agent/quiesce/mysql-hook';
import { postgresqlHook } from '../../../../agent/quiesce/postgresql-hook';
import { childProcessRunner } from '../../../../agent/quiesce/process-runner';
import type { ThawResult } from '../../../../agent/quiesce/quiescer';
import { tempDir } from '../../../helpers/coordinator-process';
import { waitFor } from '../../../helpers/wait';
import { startMariadb, startPostgres, TempServer } from './database-servers';

const quiescer = (hook: QuiesceHook, onAutoThaw?: (token: string, r: ThawResult) => void) =>
  new HookQuiescer({ hooks: async () => [hook], maxHoldMs: 60_000, defaultHoldMs: 60_000, onAutoThaw });

describe('postgresql hook (real PostgreSQL 15 through psql)', function () {
  let pg: TempServer | undefined;
  let settings: PostgresqlQuiesce;
  before(async function () {
    this.timeout(60_000);
    pg = await startPostgres();
    pg.sql('CREATE TABLE t (v int)');
  });
  after(async () => pg?.stop());
  beforeEach(() => {
    settings = {
      psql: 'psql',
      host: pg!.socket,
      port: pg!.port,
      user: 'postgres',
      database: 'postgres',
      osUser: '',
      labelDir: path.join(tempDir('headroom-labels-'), 'labels'),
    };
  });
  afterEach(() => fs.rmSync(path.dirname(settings.labelDir), { recursive: true, force: true }));

  it('takes a checkpoint and holds backup mode until the thaw, then keeps the backup_label', async () => {
    const before = pg!.sql('SELECT checkpoint_lsn FROM pg_control_checkpoint()');
    const q = quiescer(postgresqlHook(childProcessRunner, settings));
    const frozen = await q.freeze('tok-1', 0);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    const startLsn = /backup started at (\S+)$/.exec(frozen.hooks[0].message)?.[1];
    // The checkpoint pg_backup_start forced: the control file's latest checkpoint moved, and the backup starts at its redo point.
    const [checkpoint, redo] = pg!.sql('SELECT checkpoint_lsn, redo_lsn FROM pg_control_checkpoint()').split('|');
    assert.notEqual(checkpoint, before, 'a checkpoint happened');
    assert.equal(startLsn, redo);
    // The backup is held by the agent's psql session, open and idle between the statements.
    assert.equal(pg!.sql("SELECT state FROM pg_stat_activity WHERE application_name = 'headroom-quiesce'"), 'idle');
    // PostgreSQL keeps accepting writes in backup mode (the WAL makes the snapshot recoverable).
    pg!.sql('INSERT INTO t VALUES (1)');
    const thawed = await q.thaw('tok-1');
    assert.equal(thawed.ok, true, thawed.message);
    const labelFile = path.join(settings.labelDir, 'tok-1.backup_label');
    assert.match(thawed.hooks[0].message, new RegExp(`^backup stopped at \\S+; its backup_label is in ${labelFile}$`));
    const label = fs.readFileSync(labelFile, 'utf8');
    assert.match(label, new RegExp(`^START WAL LOCATION: ${startLsn} `, 'm'));
    assert.match(label, new RegExp(`^CHECKPOINT LOCATION: ${checkpoint}$`, 'm'));
    assert.match(label, /^LABEL: headroom tok-1$/m);
    await waitFor(
      () => pg!.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'headroom-quiesce'") === '0',
      5_000,
      'the session closed',
    );
  });

  it('runs psql as osUser when configured (peer authentication)', async () => {
    const q = quiescer(postgresqlHook(childProcessRunner, { ...settings, osUser: 'postgres' }));
    const frozen = await q.freeze('tok-os', 0);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    // The session's client process belongs to postgres (uid from /etc/passwd), not to us.
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const psqlUids = fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .flatMap((pid) => {
        try {
          // psql processes talking to this test's server only.
          if (
            fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'psql' ||
            !fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(settings.host)
          )
            return [];
          return [fs.statSync(`/proc/${pid}`).uid];
        } catch {
          return [];
        }
      });
    assert.deepEqual(psqlUids, [uid]);
    assert.equal((await q.thaw('tok-os')).ok, true);
  });

  it('a lost session aborts the backup on the server; the thaw says the snapshot has no label', async () => {
    const q = quiescer(postgresqlHook(childProcessRunner, settings));
    assert.equal((await q.freeze('tok-2', 0)).state, 'FROZEN');
    // What the agent dying does to its psql: the server ends the backup with the connection.
    pg!.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'headroom-quiesce'");
    const thawed = await q.thaw('tok-2');
    assert.equal(thawed.ok, false);
    assert.match(
      thawed.message,
      /^postgresql could not thaw: pg_backup_stop failed \(a snapshot taken since \S+ has no backup_label\): the client ended/,
    );
    assert.equal(fs.existsSync(path.join(settings.labelDir, 'tok-2.backup_label')), false);
  });

  it("fails the freeze with psql's reason when the server cannot be reached", async () => {
    const q = quiescer(postgresqlHook(childProcessRunner, { ...settings, port: 1 }));
    const result = await q.freeze('tok-3', 0);
    assert.equal(result.state, 'FAILED');
    assert.match(
      result.state === 'FAILED' ? result.message : '',
      /^postgresql could not freeze: pg_backup_start failed: the client ended \(exit 2: psql: error: connection to server on socket .* failed/,
    );
  });
});

/** Runs one statement in a new mariadb client; resolves its exit code. */
function mariadbClient(socket: string, statement: string): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn('mariadb', [`--socket=${socket}`, '--user=root', '-e', statement], { stdio: 'ignore' });
  return { child, exit: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

describe('mysql hook (real MariaDB through the mariadb client)', function () {
  let db: TempServer | undefined;
  let settings: MysqlQuiesce;
  before(async function () {
    this.timeout(90_000);
    db = await startMariadb();
    db.sql('CREATE DATABASE app; CREATE TABLE app.t (v int) ENGINE=InnoDB');
    settings = { client: '', socket: db.socket, host: '', user: 'root' };
  });
  after(async () => db?.stop());

  const waitingForLock = () =>
    db!.sql(
      "SELECT count(*) FROM information_schema.processlist WHERE state LIKE 'Waiting for %lock%' AND info LIKE 'INSERT%'",
    ) === '1';

  it('holds an INSERT from another session until the thaw', async () => {
    const q = quiescer(mysqlHook(childProcessRunner, settings, 10));
    const frozen = await q.freeze('tok-1', 0);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    assert.equal(frozen.hooks[0].message, 'tables flushed and locked for reading');
    const insert = mariadbClient(db!.socket, 'INSERT INTO app.t VALUES (1)');
    await waitFor(waitingForLock, 10_000, 'the INSERT waiting for the global read lock');
    assert.equal(insert.child.exitCode, null);
    assert.equal(db!.sql('SELECT count(*) FROM app.t'), '0', 'nothing written while frozen');
    const thawed = await q.thaw('tok-1');
    assert.equal(thawed.ok, true, thawed.message);
    assert.equal(await insert.exit, 0);
    assert.equal(db!.sql('SELECT count(*) FROM app.t'), '1');
  });

  it('the auto-thaw releases the lock when no thaw comes', async () => {
    const autoThaws: ThawResult[] = [];
    const q = quiescer(mysqlHook(childProcessRunner, settings, 10), (_t, r) => autoThaws.push(r));
    assert.equal((await q.freeze('tok-2', 1_000)).state, 'FROZEN');
    const insert = mariadbClient(db!.socket, 'INSERT INTO app.t VALUES (2)');
    assert.equal(await insert.exit, 0, 'the INSERT went through once the agent thawed by itself');
    // The listener hears of it once every thaw hook has finished (the client closed), a moment later.
    await waitFor(() => autoThaws.length === 1, 10_000, 'the auto-thaw reported');
    assert.equal(autoThaws[0].ok, true, autoThaws[0].message);
    assert.ok(autoThaws[0].frozenMs >= 1_000);
  });

  it('a lock that cannot be had in time fails the freeze and does not leave writes blocked behind it', async () => {
    // Another session holds app.t write-locked: FLUSH TABLES WITH READ LOCK waits for it, and while it
    // waits it already blocks every write (here to app.u). The hook timeout kills the client and the
    // server drops the wait with the connection (MariaDB 10.11 notices; lock_wait_timeout bounds it else).
    db!.sql('CREATE TABLE IF NOT EXISTS app.u (v int) ENGINE=InnoDB');
    const holder = mariadbClient(db!.socket, 'LOCK TABLES app.t WRITE; SELECT SLEEP(30)');
    await waitFor(
      () => db!.sql("SELECT count(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP%'") === '1',
      10_000,
      'the table lock held',
    );
    const q = new HookQuiescer({
      hooks: async () => [mysqlHook(childProcessRunner, settings, 1)],
      hookTimeoutMs: 1_000,
    });
    const result = await q.freeze('tok-4', 0);
    assert.equal(
      result.state === 'FAILED' && result.message,
      'mysql could not freeze: timed out after 1s',
      JSON.stringify(result),
    );
    const insert = mariadbClient(db!.socket, 'INSERT INTO app.u VALUES (3)');
    assert.equal(await insert.exit, 0);
    assert.equal(holder.child.exitCode, null, 'the INSERT went through while the table lock was still held');
    holder.child.kill();
    await holder.exit;
  });

  it('connects with a password from a file or a client option file, and never shows it', async () => {
    db!.sql(
      "CREATE USER IF NOT EXISTS 'backup'@'localhost' IDENTIFIED BY 'pw-s3cret'; GRANT RELOAD ON *.* TO 'backup'@'localhost'",
    );
    const dir = tempDir('headroom-mysql-auth-');
    try {
      const passwordFile = path.join(dir, 'password');
      fs.writeFileSync(passwordFile, 'pw-s3cret\n', { mode: 0o600 });
      const defaultsFile = path.join(dir, 'client.cnf');
      fs.writeFileSync(defaultsFile, '[client]\nuser=backup\npassword=pw-s3cret\n', { mode: 0o600 });
      for (const auth of [{ user: 'backup', passwordFile }, { defaultsFile }]) {
        const q = quiescer(mysqlHook(childProcessRunner, { ...settings, user: '', ...auth }, 10));
        const frozen = await q.freeze('tok-5', 0);
        assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
        assert.equal((await q.thaw('tok-5')).ok, true);
      }
      fs.writeFileSync(passwordFile, 'wrong-pw\n');
      const refused = await quiescer(
        mysqlHook(childProcessRunner, { ...settings, user: 'backup', passwordFile }, 10),
      ).freeze('tok-6', 0);
      const message = refused.state === 'FAILED' ? refused.message : '';
      assert.match(message, /Access denied for user 'backup'@'localhost' \(using password: YES\)/);
      assert.doesNotMatch(message, /wrong-pw|pw-s3cret/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails the freeze with the client's reason when the server cannot be reached", async () => {
    const q = quiescer(mysqlHook(childProcessRunner, { ...settings, socket: '/nonexistent/mysqld.sock' }, 10));
    const result = await q.freeze('tok-3', 0);
    assert.match(
      result.state === 'FAILED' ? result.message : '',
      /^mysql could not freeze: FLUSH TABLES WITH READ LOCK failed: the client ended \(exit 1: .*Can't connect to local (MySQL|server) .*\/nonexistent\/mysqld\.sock/,
    );
  });
});

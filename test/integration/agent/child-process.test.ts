/**
 * common/child-process.ts with real processes: the whole tree is stopped, and nothing is left behind.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { processGroupAlive, RunningChild, spawnChild } from '../../../common/child-process';
import { tempDir } from '../../helpers/coordinator-process';
import { pidAlive, readPids, treeCommand, waitFor } from './processes';

describe('child processes (real)', function () {
  this.timeout(20_000);
  const started: RunningChild[] = [];
  const start = (argv: string[]) => {
    const c = spawnChild(argv, { stdio: 'ignore' });
    started.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of started.splice(0)) {
      if (c.pid !== undefined && processGroupAlive(c.pid)) c.signalGroup('SIGKILL');
      await c.exited;
    }
  });

  it('stops the command and its grandchildren with SIGTERM to the process group', async () => {
    const pidFile = path.join(tempDir(), 'pids');
    const child = start(treeCommand(pidFile));
    const pids = await waitFor('the tree to start', () => readPids(pidFile));
    assert.equal(pids[0], child.pid);
    assert.ok(pids.every(pidAlive));
    const exit = await child.stop(5_000);
    assert.equal(exit.signal, 'SIGTERM');
    assert.equal(exit.exitCode, 143);
    assert.deepEqual(pids.filter(pidAlive), [], 'every process of the tree is gone');
    assert.equal(processGroupAlive(child.pid!), false);
  });

  it('sends SIGKILL after the grace period to a tree that ignores SIGTERM', async () => {
    const pidFile = path.join(tempDir(), 'pids');
    const [sh, c, script] = treeCommand(pidFile);
    const child = start([sh, c, `trap '' TERM; ${script}`]);
    const pids = await waitFor('the tree to start', () => readPids(pidFile));
    const t0 = Date.now();
    const exit = await child.stop(400);
    const took = Date.now() - t0;
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(took >= 400, `waited the grace period (${took} ms)`);
    assert.deepEqual(pids.filter(pidAlive), []);
  });

  it('stops what a command left running in its group after it exited', async () => {
    const pidFile = path.join(tempDir(), 'pids');
    const child = start(['sh', '-c', `sleep 120 & echo "$$ $! $!" > ${pidFile}`]);
    const exit = await child.exited;
    assert.equal(exit.exitCode, 0);
    const pids = await waitFor('the pids', () => readPids(pidFile));
    assert.ok(pidAlive(pids[1]), 'the background sleep outlived the shell');
    assert.equal(await child.stopLeftovers(2_000), true);
    assert.equal(pidAlive(pids[1]), false);
    assert.equal(await child.stopLeftovers(2_000), false, 'nothing left the second time');
  });

  // SIGHUP rather than SIGINT: a non-interactive shell starts background jobs with SIGINT ignored (POSIX).
  it('forwards a signal to the whole group', async () => {
    const pidFile = path.join(tempDir(), 'pids');
    const child = start(treeCommand(pidFile));
    const pids = await waitFor('the tree to start', () => readPids(pidFile));
    assert.equal(child.signalGroup('SIGHUP'), true);
    const exit = await child.exited;
    assert.equal(exit.exitCode, 129);
    await waitFor('the grandchildren to exit', () => pids.every((p) => !pidAlive(p)));
  });

  it('reports 127 for a command that does not exist, and keeps argv out of any shell', async () => {
    const missing = await start(['/nonexistent/restic', 'backup']).exited;
    assert.equal(missing.exitCode, 127);
    assert.match(missing.error!.message, /ENOENT/);
    const literal = await start(['sh', '-c', 'exit "$0"', '$(exit 9)']).exited;
    assert.notEqual(literal.exitCode, 9, 'arguments are passed as they are, never expanded');
  });
});

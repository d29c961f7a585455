/**
 * common/backup-run/child-process.ts with real processes: the whole tree is stopped, and nothing is left behind,
 * not even when the process that started it is SIGKILLed (the watchdog of common/backup-run/parent-watchdog.ts).
 */
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processGroupAlive, RunningChild, spawnChild } from '../../../common/backup-run/child-process';
import { tempDir } from '../../helpers/coordinator-process';
import { pidAlive, readPids, treeCommand, waitFor } from './processes';

const SPAWNING_PARENT = path.join(__dirname, 'spawning-parent.js');

/** A real Node process that starts `argv` through spawnChild; resolves with its pids once the watchdog has reported. */
async function startParent(
  killGraceMs: number,
  argv: string[],
): Promise<{ parent: ChildProcess; pid: number; watchdogPid: number }> {
  const parent = spawn(process.execPath, [SPAWNING_PARENT, String(killGraceMs), '--', ...argv], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  parent.stdout!.on('data', (d) => (out += d));
  const [pid, watchdogPid] = await waitFor('the parent to report its pids', () => {
    const lines = out.split('\n');
    return lines.length >= 3 && lines.slice(0, 2).map(Number);
  });
  return { parent, pid, watchdogPid };
}

async function sigkill(parent: ChildProcess): Promise<void> {
  const gone = new Promise((resolve) => parent.once('exit', resolve));
  parent.kill('SIGKILL');
  await gone;
}

describe('child processes (real)', function () {
  this.timeout(20_000);
  const started: RunningChild[] = [];
  const start = (argv: string[]) => {
    const c = spawnChild(argv, { stdio: 'ignore' });
    started.push(c);
    return c;
  };
  const groups: number[] = [];
  afterEach(async () => {
    for (const c of started.splice(0)) {
      if (c.pid !== undefined && processGroupAlive(c.pid)) c.signalGroup('SIGKILL');
      await c.exited;
    }
    for (const pgid of groups.splice(0)) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
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
    assert.equal(processGroupAlive(child.pid!), false, 'the watchdog too: dismissed, and waited for');
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
    assert.ok(pidAlive(child.watchdogPid!), 'the watchdog ignores what is forwarded to the group');
    assert.equal(await child.stopLeftovers(2_000), false, 'the watchdog is not a leftover');
    assert.equal(pidAlive(child.watchdogPid!), false, 'and it has stood down');
  });

  it('reports 127 for a command that does not exist, and keeps argv out of any shell', async () => {
    const missing = await start(['/nonexistent/restic', 'backup']).exited;
    assert.equal(missing.exitCode, 127);
    assert.match(missing.error!.message, /ENOENT/);
    const literal = await start(['sh', '-c', 'exit "$0"', '$(exit 9)']).exited;
    assert.notEqual(literal.exitCode, 9, 'arguments are passed as they are, never expanded');
    const out = path.join(tempDir(), 'args');
    const args = ['$(touch /tmp/headroom-injected)', '`id`', '"; exit 3; "', "it's", 'two\nlines', '', '*', '-c', '$1'];
    const printed = await start(['sh', '-c', `printf '%s\\0' "$@" > ${out}`, 'sh', ...args]).exited;
    assert.equal(printed.exitCode, 0);
    assert.deepEqual(
      fs.readFileSync(out, 'utf8').split('\0').slice(0, -1),
      args,
      'every argument arrives byte for byte',
    );
  });

  it("reports the command's own exit code and signal: it leads the group and is our child, with fd 3 closed and no signal ignored", async () => {
    const dir = tempDir();
    const seen = path.join(dir, 'seen');
    // $$ of the command is the pid we know; fd 3 (the watchdog's pipe) is closed; SigIgn is empty, so a
    // forwarded SIGINT works as it would without the watchdog.
    const probe = start(['sh', '-c', `{ echo $$; ls /proc/$$/fd; grep SigIgn /proc/$$/status; } > ${seen}; exit 130`]);
    assert.deepEqual(await probe.exited, { code: 130, signal: null, exitCode: 130 });
    const [pid, ...rest] = fs.readFileSync(seen, 'utf8').trim().split('\n');
    assert.equal(Number(pid), probe.pid);
    assert.ok(!rest.slice(0, -1).includes('3'), `the watchdog's pipe is closed: fds ${rest.slice(0, -1)}`);
    assert.match(rest.at(-1)!, /^SigIgn:\s+0+$/);
    const killed = await start(['sh', '-c', 'kill -USR1 $$']).exited;
    assert.deepEqual(killed, { code: null, signal: 'SIGUSR1', exitCode: 138 });
  });

  it('dismisses the watchdog once the command and what it left are gone', async () => {
    const done = start(['true']);
    assert.equal((await done.exited).exitCode, 0);
    assert.ok(done.watchdogPid && done.watchdogPid !== done.pid, `the watchdog reported its pid (${done.watchdogPid})`);
    assert.equal(await done.stopLeftovers(2_000), false);
    assert.equal(pidAlive(done.watchdogPid!), false, 'gone by the time stopLeftovers resolves');

    const stopped = start(['sleep', '120']);
    await waitFor('the watchdog to report', () => stopped.watchdogPid);
    const t0 = Date.now();
    assert.equal((await stopped.stop(5_000)).signal, 'SIGTERM');
    assert.ok(Date.now() - t0 < 2_000, 'stop does not wait the grace for the watchdog, which ignores SIGTERM');
    assert.equal(pidAlive(stopped.watchdogPid!), false, 'gone by the time stop resolves');
  });

  it('stops the command and its grandchildren with SIGTERM when the process that started them is SIGKILLed', async () => {
    const pidFile = path.join(tempDir(), 'pids');
    const { parent, pid, watchdogPid } = await startParent(300, treeCommand(pidFile));
    groups.push(pid);
    const pids = await waitFor('the tree to start', () => readPids(pidFile));
    assert.equal(pids[0], pid);
    await sigkill(parent);
    await waitFor('the tree to be stopped', () => pids.every((p) => !pidAlive(p)), 2_000);
    await waitFor(
      'the watchdog to end itself after the grace',
      () => !pidAlive(watchdogPid) && !processGroupAlive(pid),
      3_000,
    );
  });

  it('sends SIGKILL after the grace to a tree that ignores SIGTERM when the process that started it is SIGKILLed', async () => {
    const pidFile = path.join(tempDir(), 'pids');
    const [sh, c, script] = treeCommand(pidFile);
    const grace = 1_000;
    const { parent, pid } = await startParent(grace, [sh, c, `trap '' TERM; ${script}`]);
    groups.push(pid);
    const pids = await waitFor('the tree to start', () => readPids(pidFile));
    const killedAt = Date.now(); // before the kill: the watchdog's grace starts at the parent's death
    await sigkill(parent);
    await new Promise((r) => setTimeout(r, grace / 2));
    assert.deepEqual(pids.filter(pidAlive), pids, 'SIGTERM ignored: all still alive half way through the grace');
    await waitFor('the tree to be killed', () => pids.every((p) => !pidAlive(p)), 3_000);
    const took = Date.now() - killedAt;
    assert.ok(took >= grace, `killed after the grace (${took} ms)`);
    await waitFor('the group to be gone', () => !processGroupAlive(pid), 1_000);
  });
});

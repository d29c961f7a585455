/**
 * The fsfreeze hook on a real ext4 filesystem (loop-mounted in a temp dir): a child's write is held while
 * frozen and completes after the thaw, or after the agent's own auto-thaw when no thaw comes. Mounting and
 * freezing need root: without it these tests say so and skip; as root a mount that fails fails the test.
 */
import { strict as assert } from 'node:assert';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsfreezeHook } from '../../../../agent/quiesce/fsfreeze-hook';
import { HookQuiescer } from '../../../../agent/quiesce/hook-quiescer';
import { childProcessRunner } from '../../../../agent/quiesce/process-runner';
import type { ThawResult } from '../../../../agent/quiesce/quiescer';
import { tempDir } from '../../../helpers/coordinator-process';
import { waitFor } from '../../../helpers/wait';
import { isRoot, requireTool } from '../../../helpers/require-tool';

/** The process's state letter from /proc (D: uninterruptible sleep, where a write to a frozen filesystem waits). */
function stateOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('fsfreeze hook (real ext4 on a loop device)', function () {
  let mount: string;
  let image: string;
  let mounted = false;

  beforeEach(function () {
    if (!isRoot()) {
      // Say why rather than pretend a freeze.
      console.log('      skipped: mounting an ext4 image on a loop device needs root');
      this.skip();
    }
    requireTool('mkfs.ext4', 'e2fsprogs');
    requireTool('fsfreeze', 'util-linux');
    const dir = tempDir('headroom-fsfreeze-');
    image = path.join(dir, 'ext4.img');
    mount = path.join(dir, 'mnt');
    fs.mkdirSync(mount);
    execFileSync('truncate', ['-s', '32M', image]);
    execFileSync('mkfs.ext4', ['-q', image]);
    execFileSync('mount', ['-o', 'loop', image, mount], { stdio: 'pipe' });
    mounted = true;
  });

  afterEach(() => {
    if (!mounted) return;
    try {
      execFileSync('fsfreeze', ['--unfreeze', mount], { stdio: 'pipe' });
    } catch {
      // Not frozen: as it should be.
    }
    execFileSync('umount', [mount]);
    mounted = false;
    fs.rmSync(path.dirname(image), { recursive: true, force: true });
  });

  /** A child writing a file on the mount; resolves its exit code. */
  function writer(file: string, text: string) {
    const child = spawn('sh', ['-c', `echo ${text} > ${file}`], { stdio: 'ignore' });
    return { child, exit: exitOf(child) };
  }

  it('holds a write while frozen and lets it complete after the thaw', async () => {
    const q = new HookQuiescer({
      hooks: async () => [fsfreezeHook(childProcessRunner, mount)],
      defaultHoldMs: 60_000,
      maxHoldMs: 60_000,
    });
    const frozen = await q.freeze('t1', 0);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    assert.deepEqual(
      frozen.hooks.map((h) => [h.name, h.message]),
      [[`fsfreeze:${mount}`, `froze ${mount}`]],
    );
    const file = path.join(mount, 'during-freeze');
    const w = writer(file, 'written');
    await waitFor(() => stateOf(w.child.pid!) === 'D', 10_000, 'the writer blocked in the kernel');
    assert.equal(w.child.exitCode, null, 'the write has not completed');
    assert.equal(fs.existsSync(file), false, 'nothing written while frozen');
    const thawed = await q.thaw('t1');
    assert.equal(thawed.ok, true, thawed.message);
    assert.equal(thawed.hooks[0].message, `thawed ${mount}`);
    assert.equal(await w.exit, 0);
    assert.equal(fs.readFileSync(file, 'utf8'), 'written\n');
  });

  it('thaws by itself when no thaw arrives within the bound, and the held write completes', async () => {
    const autoThaws: ThawResult[] = [];
    const q = new HookQuiescer({
      hooks: async () => [fsfreezeHook(childProcessRunner, mount)],
      maxHoldMs: 60_000,
      onAutoThaw: (_token, result) => autoThaws.push(result),
    });
    const frozen = await q.freeze('t1', 1_500);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    const w = writer(path.join(mount, 'held'), 'late');
    await waitFor(
      () => w.child.exitCode !== null || stateOf(w.child.pid!) === 'D',
      10_000,
      'the writer blocked or done',
    );
    assert.equal(w.child.exitCode, null, 'the write was held while frozen');
    assert.equal(await w.exit, 0, 'the write completed once the agent thawed by itself');
    await waitFor(() => autoThaws.length === 1, 10_000, 'the auto-thaw reported');
    assert.equal(autoThaws[0].autoThawed, true);
    assert.equal(autoThaws[0].ok, true, autoThaws[0].message);
    assert.ok(autoThaws[0].frozenMs >= 1_500, `frozen ${autoThaws[0].frozenMs} ms, bound 1500 ms`);
    // Not frozen any more: the kernel refuses to thaw it again.
    assert.throws(() => execFileSync('fsfreeze', ['--unfreeze', mount], { stdio: 'pipe' }), /Invalid argument/);
    assert.equal((await q.thaw('t1')).autoThawed, true, 'the late thaw answers the auto-thaw');
  });

  it('fails when the filesystem is already frozen by someone else, and leaves their freeze alone', async () => {
    execFileSync('fsfreeze', ['--freeze', mount]);
    const q = new HookQuiescer({ hooks: async () => [fsfreezeHook(childProcessRunner, mount)] });
    const result = await q.freeze('t1', 0);
    assert.equal(result.state, 'FAILED');
    assert.match(
      result.state === 'FAILED' ? result.message : '',
      new RegExp(`^fsfreeze:${mount} could not freeze: fsfreeze --freeze ${mount}: exit 1: .*Device or resource busy`),
    );
    execFileSync('fsfreeze', ['--unfreeze', mount]); // still theirs to thaw: succeeds
  });
});

/**
 * The `npm start` demo (examples/demo/demo.ts) cleans up after itself: its working directory is removed at
 * the end unless --keep, and kept with --keep, saying where. Run short, in a TMPDIR of its own, so that
 * nothing else's temporary files are counted.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST, tempDir } from '../../helpers/coordinator-process';

const DEMO = path.join(DIST, 'examples', 'demo', 'demo.js');

function startDemo(args: string[], tmp: string) {
  const child = spawn(process.execPath, [DEMO, '--duration', '2s', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: tmp },
  });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.resume();
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, exited };
}

describe('npm start (the demo)', function () {
  this.timeout(120_000);

  it('removes its working directory at the end, and says so', async () => {
    const tmp = tempDir('headroom-demo-test-');
    const demo = startDemo([], tmp);
    assert.equal(await demo.exited, 0, demo.stdout());
    const m = /^removed the working directory (\S+) \(npm start -- --keep keeps it\)$/m.exec(demo.stdout());
    assert.ok(m, demo.stdout());
    assert.equal(path.dirname(m[1]), tmp);
    assert.deepEqual(fs.readdirSync(tmp), [], 'nothing left behind');
    fs.rmdirSync(tmp);
  });

  it('with --keep keeps it and its dashboard, and says where they are', async () => {
    const tmp = tempDir('headroom-demo-test-');
    const demo = startDemo(['--keep'], tmp);
    while (!demo.stdout().includes('Press Ctrl-C to stop.')) {
      assert.equal(demo.child.exitCode, null, demo.stdout());
      await new Promise((r) => setTimeout(r, 100));
    }
    const dashboard = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/\S*)$/m.exec(demo.stdout());
    assert.ok(dashboard, demo.stdout());
    const page = await fetch(dashboard[1]);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script src="\/static\/app\.js">/);
    demo.child.kill('SIGINT');
    assert.equal(await demo.exited, 130);
    const m = /^kept the working directory (\S+) \(database, logs, archives\); remove it with rm -r \1$/m.exec(
      demo.stdout(),
    );
    assert.ok(m, demo.stdout());
    assert.ok(fs.existsSync(path.join(m[1], 'headroom.db')));
    fs.rmSync(tmp, { recursive: true });
  });
});

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HOOK_FILE_NAME, hookScript, installFsfreezeHook, shellQuote } from '../../../../agent/freeze/fsfreeze-hook';

describe('fsfreeze hook script', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "headroom hook 'q' "));
  });

  /** A stand-in agent executable that records its arguments, one per line. */
  function fakeAgent(): { file: string; calls: () => string[] } {
    const file = path.join(dir, 'fake agent');
    const out = path.join(dir, 'calls');
    fs.writeFileSync(file, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> ${shellQuote(out)}\n`, {
      mode: 0o755,
    });
    return { file, calls: () => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').trimEnd().split('\n') : []) };
  }
  const run = (script: string, arg: string) => spawnSync('env', ['-i', script, arg], { encoding: 'utf8' });

  it('runs the agent by absolute path with freeze-notice for freeze and thaw, in a bare environment', () => {
    const agent = fakeAgent();
    const script = installFsfreezeHook(
      path.join(dir, 'fsfreeze-hook.d'),
      hookScript([agent.file], ['--socket', path.join(dir, 'a b.sock')]),
    );
    assert.equal(script, path.join(dir, 'fsfreeze-hook.d', HOOK_FILE_NAME));
    assert.equal(fs.statSync(script).mode & 0o777, 0o755);
    assert.equal(run(script, 'freeze').status, 0);
    assert.equal(run(script, 'thaw').status, 0);
    assert.deepEqual(agent.calls(), [
      'freeze-notice',
      'freeze',
      '--socket',
      path.join(dir, 'a b.sock'),
      'freeze-notice',
      'thaw',
      '--socket',
      path.join(dir, 'a b.sock'),
    ]);
  });

  it('ignores any other argument, and does not fail the freeze when the agent was removed', () => {
    const agent = fakeAgent();
    const script = installFsfreezeHook(dir, hookScript([agent.file], []));
    assert.equal(run(script, 'something-else').status, 0);
    assert.deepEqual(agent.calls(), []);
    fs.rmSync(agent.file);
    const gone = run(script, 'freeze');
    assert.equal(gone.status, 0);
    assert.match(gone.stderr, /headroom: .*fake agent: not installed any more: not reported/);
  });

  it('checks every file of a node command (node and the main script)', () => {
    const agent = fakeAgent();
    const script = installFsfreezeHook(dir, hookScript([agent.file, path.join(dir, 'main.js')], []));
    const r = run(script, 'freeze');
    assert.equal(r.status, 0);
    assert.match(r.stderr, /not installed any more/);
    assert.deepEqual(agent.calls(), [], 'main.js is missing: nothing run');
  });

  it('replaces an installed script whole', () => {
    const first = installFsfreezeHook(dir, '#!/bin/sh\nexit 1\n');
    installFsfreezeHook(dir, hookScript([fakeAgent().file], []));
    assert.match(fs.readFileSync(first, 'utf8'), /freeze-notice/);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp')),
      [],
      'no temporary file left',
    );
  });
});

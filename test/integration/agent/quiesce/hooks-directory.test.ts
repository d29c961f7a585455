/**
 * The hooks directory with real scripts run as real processes, through the HookQuiescer: the
 * fsfreeze-hook.d contract (lexical order, `freeze`, then `thaw` in reverse), failures and timeouts.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HookQuiescer } from '../../../../agent/quiesce/hook-quiescer';
import { listHooksDirectory } from '../../../../agent/quiesce/hooks-directory';
import { childProcessRunner, OUTPUT_LIMIT } from '../../../../agent/quiesce/process-runner';
import { tempDir } from '../../../helpers/coordinator-process';
import { waitFor } from '../../../helpers/wait';
import { captureLog } from '../../../unit/common/backup-run/guarded-run-fakes';

describe('hooks directory (real scripts)', () => {
  let dir: string;
  let record: string;
  beforeEach(() => {
    dir = tempDir('headroom-hooks-');
    record = path.join(tempDir('headroom-hooks-record-'), 'calls');
  });
  afterEach(() => {
    for (const d of [dir, path.dirname(record)]) fs.rmSync(d, { recursive: true, force: true });
  });

  /** A script that appends "NAME ARGS" to the record, then runs `body`. */
  function script(name: string, body = '', mode = 0o755): void {
    fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho "${name} $*" >> ${record}\n${body}\n`, { mode });
  }
  const calls = () => (fs.existsSync(record) ? fs.readFileSync(record, 'utf8').trim().split('\n') : []);

  function quiescer(options: { hookTimeoutMs?: number } = {}) {
    const log = captureLog();
    const q = new HookQuiescer({
      hooks: () => listHooksDirectory(dir, childProcessRunner, log.log),
      log: log.log,
      ...options,
    });
    return { q, log };
  }

  it('runs every executable in lexical order with freeze, and with thaw in reverse', async () => {
    script('20-app', 'echo app flushed');
    script('10-db');
    script('99-last');
    script('30-disabled', '', 0o644);
    script('40-old.dpkg-old');
    script('50-edit~');
    fs.mkdirSync(path.join(dir, '60-a-directory'));
    const { q, log } = quiescer();
    const frozen = await q.freeze('t1', 0);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    assert.deepEqual(
      frozen.hooks.map((h) => [h.name, h.message]),
      [
        ['10-db', 'freeze ok'],
        ['20-app', 'app flushed'],
        ['99-last', 'freeze ok'],
      ],
    );
    const thawed = await q.thaw('t1');
    assert.equal(thawed.ok, true);
    assert.deepEqual(calls(), [
      '10-db freeze',
      '20-app freeze',
      '99-last freeze',
      '99-last thaw',
      '20-app thaw',
      '10-db thaw',
    ]);
    assert.ok(
      log.lines.some((l) => String(l.msg).includes('not executable') && String(l.file).endsWith('30-disabled')),
      JSON.stringify(log.lines),
    );
  });

  it('a non-zero exit fails the freeze with its output, and the scripts that froze are thawed', async () => {
    script('10-db');
    script('20-app', 'echo "cannot reach the app socket" >&2; exit 3');
    script('30-never');
    const { q } = quiescer();
    const result = await q.freeze('t1', 0);
    assert.equal(result.state, 'FAILED');
    assert.equal(
      result.state === 'FAILED' && result.message,
      '20-app could not freeze: exit 3: cannot reach the app socket',
    );
    assert.deepEqual(calls(), ['10-db freeze', '20-app freeze', '10-db thaw']);
  });

  it('kills a script that outlasts the hook timeout, with what it started', async () => {
    const pidFile = path.join(path.dirname(record), 'sleeper.pid');
    script('10-slow', `sleep 60 & echo $! > ${pidFile}; wait`);
    const { q } = quiescer({ hookTimeoutMs: 500 });
    const result = await q.freeze('t1', 0);
    assert.equal(result.state === 'FAILED' && result.message, '10-slow could not freeze: timed out after 500ms');
    const sleeper = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor(
      () => {
        try {
          process.kill(sleeper, 0);
          return false;
        } catch {
          return true;
        }
      },
      5_000,
      "the script's child killed",
    );
  });

  it('keeps only the end of a long output', async () => {
    script('10-noisy', 'i=0; while [ $i -lt 500 ]; do echo "line $i of noise"; i=$((i+1)); done; exit 1');
    const { q } = quiescer();
    const result = await q.freeze('t1', 0);
    const message = result.state === 'FAILED' ? result.message : '';
    assert.ok(message.length <= OUTPUT_LIMIT + 60, `${message.length} characters`);
    assert.match(message, /^10-noisy could not freeze: exit 1: …/);
    assert.match(message, /line 499 of noise$/);
  });

  it('an empty or missing directory gives no hooks, so the freeze fails honestly', async () => {
    const { q } = quiescer();
    const empty = await q.freeze('t1', 0);
    assert.match(empty.state === 'FAILED' ? empty.message : '', /no quiesce hooks configured/);
    assert.deepEqual(await listHooksDirectory(path.join(dir, 'missing'), childProcessRunner), []);
  });
});

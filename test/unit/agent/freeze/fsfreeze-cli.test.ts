import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../../../common/util/log';
import { main } from '../../../../agent/main';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, {
    out: (t) => (out += t),
    err: (t) => (err += t),
    log: createLogger({ level: 'error' }),
  });
  return { code, out, err };
}

describe('headroom-agent freeze-notice and install-fsfreeze-hook', () => {
  const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-cli-'));

  it('exits 0 with the reason on stderr when no daemon can be told: the freeze must not fail for it', async () => {
    const socket = path.join(dir(), 'none.sock');
    const r = await cli(['freeze-notice', 'freeze', '--socket', socket]);
    assert.equal(r.code, 0);
    assert.equal(r.out, '');
    assert.equal(
      r.err,
      `headroom-agent: no agent is listening on ${socket} (ENOENT): the freeze is not reported: guest backups are not held off\n`,
    );
  });

  it('falls back to the default socket, saying why, when the configuration cannot be read', async () => {
    const config = path.join(dir(), 'agent.yaml');
    fs.writeFileSync(config, 'controlSocket: relative.sock\n');
    const r = await cli(['freeze-notice', 'thaw', '--config', config]);
    assert.equal(r.code, 0);
    assert.match(
      r.err,
      new RegExp(
        `^headroom-agent: ${config}: controlSocket: expected an absolute path.*; trying /run/headroom-agent.sock\n`,
      ),
    );
  });

  it('answers usage mistakes with 64, naming the option', async () => {
    assert.deepEqual(await cli(['freeze-notice']), {
      code: 64,
      out: '',
      err: "headroom-agent: expected freeze or thaw, got nothing; see 'headroom-agent freeze-notice --help'\n",
    });
    assert.match(
      (await cli(['freeze-notice', 'freeze', '--hold', '2h'])).err,
      /^headroom-agent: --hold: expected 1s to 1h, got 2h; see 'headroom-agent freeze-notice --help'\n$/,
    );
    assert.match(
      (await cli(['freeze-notice', 'freeze', '--source', 'a b'])).err,
      /^headroom-agent: --source: expected a name/,
    );
    assert.equal((await cli(['install-fsfreeze-hook', '--hold', 'soon'])).code, 64);
    assert.equal(
      (await cli(['freeze-notice', 'freeze', '--hold', '300'])).err,
      `headroom-agent: --hold: "300" has no unit: write 300s, 300m or 300ms; see 'headroom-agent freeze-notice --help'\n`,
    );
    assert.equal(
      (await cli(['freeze-notice', 'freeze', '--sorce', 'x'])).err,
      `headroom-agent: unknown option --sorce (did you mean --source?); see 'headroom-agent freeze-notice --help'\n`,
    );
  });

  it('installs a hook that passes its options on with absolute paths', async () => {
    const d = dir();
    const r = await cli([
      'install-fsfreeze-hook',
      '--dir',
      path.join(d, 'hook.d'),
      '--hold',
      '5m',
      '--socket',
      path.join(d, 'a.sock'),
    ]);
    assert.equal(r.code, 0, r.err);
    const script = fs.readFileSync(path.join(d, 'hook.d', 'headroom-agent'), 'utf8');
    // In-process, argv[1] is mocha's: which program runs is checked by the integration tests, the options here.
    assert.match(
      script,
      new RegExp(
        `^exec ${process.execPath} \\S+ freeze-notice "\\$1" --hold 5m --socket ${path.join(d, 'a.sock')}$`,
        'm',
      ),
    );
  });
});

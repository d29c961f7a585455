/**
 * The three real executables agree on their command line (issue 15, point 12): the same version line, the
 * same one-line usage error with the nearest option and where the help is, exit 64, and durations that
 * need a unit. Each runs as a child process; none reaches a coordinator (nothing listens).
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AGENT_MAIN, COORDINATOR_MAIN, CTL_MAIN, DIST } from '../../helpers/coordinator-process';

const VERSION = (JSON.parse(fs.readFileSync(path.join(DIST, '..', 'package.json'), 'utf8')) as { version: string })
  .version;

const EXECUTABLES = [
  { name: 'headroomctl', main: CTL_MAIN },
  { name: 'headroom-agent', main: AGENT_MAIN },
  { name: 'headroom-coordinator', main: COORDINATOR_MAIN },
] as const;

function run(main: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [main, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HEADROOM_LOG: 'warn', HEADROOM_COORDINATOR: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

describe('the three executables agree on their command line', () => {
  for (const { name, main } of EXECUTABLES) {
    it(`${name} prints "${name} <version>" with --version and with version`, async () => {
      for (const args of [['--version'], ['version']]) {
        const r = await run(main, args);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `${name} ${VERSION}\n`);
      }
    });

    it(`${name} shows Examples: in its help`, async () => {
      const r = await run(main, ['--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`\\nExamples:\\n {2}${name} `));
    });
  }

  it('each answers an unknown flag with one line naming the nearest one and where the help is, exit 64', async () => {
    const cases = [
      {
        main: CTL_MAIN,
        args: ['tokens', '--hots', 'a'],
        line: "headroomctl: unknown option --hots (did you mean --host?); see 'headroomctl tokens --help'",
      },
      {
        main: AGENT_MAIN,
        args: ['exec', '--jb', 'x', '--', 'true'],
        line: "headroom-agent: unknown option --jb (did you mean --job?); see 'headroom-agent exec --help'",
      },
      {
        main: COORDINATOR_MAIN,
        args: ['--lisen', '127.0.0.1:0'],
        line: "headroom-coordinator: unknown option --lisen (did you mean --listen?); see 'headroom-coordinator --help'",
      },
    ];
    for (const c of cases) {
      const r = await run(c.main, c.args);
      assert.equal(r.code, 64);
      assert.equal(r.stderr, `${c.line}\n`);
      assert.equal(r.stdout, '');
    }
  });

  it('each suggests the nearest command for an unknown one', async () => {
    const ctl = await run(CTL_MAIN, ['stauts']);
    assert.equal(ctl.code, 64);
    assert.equal(
      ctl.stderr,
      `headroomctl: unknown command "stauts" (did you mean status?); see 'headroomctl --help'\n`,
    );
    const agent = await run(AGENT_MAIN, ['exce']);
    assert.equal(agent.code, 64);
    assert.equal(
      agent.stderr,
      `headroom-agent: unknown command "exce" (did you mean exec?); see 'headroom-agent --help'\n`,
    );
  });

  it('each refuses a duration without a unit, naming the flag as typed', async () => {
    const ctl = await run(CTL_MAIN, ['policy', 'set', '--lease-ttl', '30']);
    assert.equal(ctl.code, 64);
    assert.match(ctl.stderr, /^headroomctl: --lease-ttl: "30" has no unit: write 30s, 30m or 30ms;/);
    const coordinator = await run(COORDINATOR_MAIN, ['--plaintext', '--lease-ttl', '30']);
    assert.equal(coordinator.code, 64);
    assert.match(coordinator.stderr, /^headroom-coordinator: --lease-ttl: "30" has no unit: write 30s, 30m or 30ms;/);
    const agent = await run(AGENT_MAIN, ['exec', '--job', 'j', '--window', '30', '--', 'true']);
    assert.equal(agent.code, 64);
    assert.match(agent.stderr, /^headroom-agent: --window: "30" has no unit: write 30s, 30m or 30ms;/);
  });

  it('headroomctl and headroom-agent print a bash completion script from their command tables', async () => {
    const ctl = await run(CTL_MAIN, ['completion', 'bash']);
    assert.equal(ctl.code, 0);
    assert.match(ctl.stdout, /complete -o default -F _headroomctl headroomctl\n$/);
    const agent = await run(AGENT_MAIN, ['completion', 'zsh']);
    assert.equal(agent.code, 0);
    assert.match(agent.stdout, /\*" exec "\*\) opts="--job --config --window /);
  });
});

import { strict as assert } from 'node:assert';
import type { Logger } from '../../../common/util/log';
import { parseArgs } from '../../../common/util/cli-args';
import { hostBackupCommand, progressOutput } from '../../../ctl/commands/host-backup';
import type { Context } from '../../../ctl/context';

function fakeContext(json: boolean): { ctx: Context; stderr: string[] } {
  const stderr: string[] = [];
  const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
  const ctx = {
    coordinator: '127.0.0.1:7400',
    json,
    io: { stdout: () => {}, stderr: (t: string) => void stderr.push(t) },
    log: silent,
  } as unknown as Context;
  return { ctx, stderr };
}

describe('ctl host-backup', () => {
  it('takes --cpu-limit and --io-limit above 0 and within what a budget may be, naming the option otherwise', () => {
    const parse = (...argv: string[]) => parseArgs([...argv, '--', 'true'], hostBackupCommand.options, { rest: true });
    const args = parse('--cpu-limit', '150', '--io-limit', '10MiB');
    assert.equal(args.get('cpu-limit'), 150);
    assert.equal(args.get('io-limit'), 10 * 1024 * 1024);
    assert.throws(() => parse('--cpu-limit', '0'), /--cpu-limit: expected a whole number from 1/);
    assert.throws(() => parse('--cpu-limit', '102401'), /--cpu-limit: 102401 is too large \(at most 102400/);
    assert.throws(() => parse('--io-limit', '0'), /--io-limit: expected a rate above 0/);
    assert.throws(() => parse('--io-limit', 'fast'), /--io-limit: expected bytes per second/);
  });

  it("prints the runner's events as headroomctl messages, or one JSON object each with --json", () => {
    const text = fakeContext(false);
    progressOutput(text.ctx)('consistency', { consistency: 'crash' }, 'consistency: crash');
    assert.deepEqual(text.stderr, ['headroomctl: consistency: crash\n']);
    const json = fakeContext(true);
    progressOutput(json.ctx)('consistency', { consistency: 'crash' }, 'consistency: crash');
    assert.deepEqual(
      json.stderr.map((l) => JSON.parse(l)),
      [{ event: 'consistency', consistency: 'crash' }],
    );
  });
});

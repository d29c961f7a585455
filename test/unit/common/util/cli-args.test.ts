import { strict as assert } from 'node:assert';
import {
  type OptionSpec,
  didYouMean,
  editDistance,
  formatUsageError,
  nearest,
  parseArgs,
  parseBool,
  parseInt32,
  parsePositiveInt,
  parseSince,
  parseString,
  parseText,
  sinceUnixMs,
  parseUint32,
  wantsHelp,
} from '../../../../common/util/cli-args';
import { UsageError } from '../../../../common/util/usage-error';

const SPECS: OptionSpec[] = [
  { name: 'host', value: 'H', help: '', parse: parseString },
  { name: 'limit', value: 'N', help: '', parse: parsePositiveInt },
  { name: 'reason', value: 'TEXT', help: '', parse: parseText },
  { name: 'follow', help: '' },
];

function usageError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

describe('cli-args', () => {
  it('reads options with separate and inline values, and flags', () => {
    const args = parseArgs(['--host', 'h1', '--limit=5', '--follow'], SPECS);
    assert.equal(args.get('host'), 'h1');
    assert.equal(args.get('limit'), 5);
    assert.equal(args.flag('follow'), true);
    assert.equal(args.has('reason'), false);
    assert.equal(args.get('reason'), undefined);
    assert.equal(args.rest, undefined);
  });

  it('refuses an unknown option, naming it and the nearest known one', () => {
    usageError(
      () => parseArgs(['--host', 'h', '--hots', 'x'], SPECS),
      /^unknown option --hots \(did you mean --host\?\)$/,
    );
    usageError(
      () => parseArgs(['--jb'], [{ name: 'job', value: 'NAME', help: '', parse: parseString }]),
      /^unknown option --jb \(did you mean --job\?\)$/,
    );
    usageError(() => parseArgs(['--fol'], SPECS), /^unknown option --fol \(did you mean --follow\?\)$/);
    usageError(() => parseArgs(['--bogus=1'], SPECS), /^unknown option --bogus$/);
    usageError(() => parseArgs(['-x'], SPECS), /^unknown option -x$/);
  });

  it('reads one-letter aliases, naming them as typed in messages', () => {
    const specs: OptionSpec[] = [
      { name: 'config', short: 'c', value: 'FILE', help: '', parse: parseString },
      { name: 'help', short: 'h', help: '' },
    ];
    const args = parseArgs(['-c', 'a.yaml', '-h'], specs);
    assert.equal(args.get('config'), 'a.yaml');
    assert.equal(args.flag('help'), true);
    usageError(() => parseArgs(['-c'], specs), /^-c needs a value \(FILE\)$/);
  });

  it('keeps the command after --, and says where a stray word belongs', () => {
    assert.deepEqual(parseArgs(['--follow', '--', 'tar', '--jb'], SPECS, { rest: true }).rest, ['tar', '--jb']);
    usageError(
      () => parseArgs(['tar'], SPECS, { rest: true }),
      /^unexpected argument "tar" \(put the command to run after "--"\)$/,
    );
  });

  it('suggests only words near enough to be a typo', () => {
    assert.equal(editDistance('hots', 'host'), 1, 'a swap of neighbours is one edit');
    assert.equal(editDistance('stauts', 'status'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(nearest('stauts', ['status', 'tokens']), 'status');
    assert.equal(nearest('verison', ['version', 'verify']), 'version');
    assert.equal(nearest('xyz', ['status', 'tokens']), undefined);
    assert.equal(nearest('lease', ['lease-ttl', 'host']), 'lease-ttl', 'a prefix');
    assert.equal(didYouMean('polcy', ['policy', 'plan']), ' (did you mean policy?)');
    assert.equal(didYouMean('zzz', ['policy']), '');
  });

  it('formats a usage error as one line per problem, the last saying where the help is', () => {
    assert.equal(
      formatUsageError('headroom-agent', 'unknown option --jb (did you mean --job?)', 'headroom-agent exec --help'),
      "headroom-agent: unknown option --jb (did you mean --job?); see 'headroom-agent exec --help'\n",
    );
    assert.equal(
      formatUsageError('headroom-agent', '--window: a\n--ttl: b', 'headroom-agent exec --help'),
      "headroom-agent: --window: a\nheadroom-agent: --ttl: b; see 'headroom-agent exec --help'\n",
    );
  });

  it('refuses an option without its value, naming the option and the placeholder', () => {
    usageError(() => parseArgs(['--host'], SPECS), /--host needs a value \(H\)/);
    usageError(() => parseArgs(['--host', '--follow'], SPECS), /--host needs a value/);
  });

  it('refuses a value given to a flag', () => {
    usageError(() => parseArgs(['--follow=yes'], SPECS), /--follow takes no value/);
  });

  it('names the option whose value does not convert', () => {
    usageError(() => parseArgs(['--limit', 'ten'], SPECS), /--limit: expected a whole number >= 0, got "ten"/);
    usageError(() => parseArgs(['--limit', '0'], SPECS), /--limit: expected a whole number from 1/);
    usageError(() => parseArgs(['--host='], SPECS), /--host: expected a non-empty value/);
  });

  it('accepts an empty text value and one that starts with a dash', () => {
    assert.equal(parseArgs(['--reason='], SPECS).get('reason'), '');
    assert.equal(parseArgs(['--reason', '-5 degrees'], SPECS).get('reason'), '-5 degrees');
  });

  it('takes the declared positionals and refuses more', () => {
    const args = parseArgs(['abc123', '--reason', 'r'], SPECS, { positionals: ['TOKEN_ID'] });
    assert.deepEqual(args.positionals, ['abc123']);
    usageError(() => parseArgs(['a', 'b'], SPECS, { positionals: ['TOKEN_ID'] }), /unexpected argument "b"/);
    usageError(() => parseArgs(['a'], SPECS), /unexpected argument "a"/);
  });

  it('keeps everything after -- verbatim when the command takes a command line', () => {
    const args = parseArgs(['--host', 'h', '--', 'vzdump', '--mode', 'snapshot', '--', '101'], SPECS, { rest: true });
    assert.deepEqual(args.rest, ['vzdump', '--mode', 'snapshot', '--', '101']);
    assert.equal(args.get('host'), 'h');
  });

  it('hints at -- when a command-taking command gets a bare word, and refuses -- elsewhere', () => {
    usageError(() => parseArgs(['vzdump'], SPECS, { rest: true }), /put the command to run after "--"/);
    usageError(() => parseArgs(['--', 'x'], SPECS), /unexpected "--"/);
  });

  it('says that a required option is missing, naming it', () => {
    usageError(() => parseArgs([], SPECS).require('host'), /missing required option --host/);
    assert.equal(parseArgs(['--host', 'h'], SPECS).require('host'), 'h');
  });

  it('sees --help and -h before --, not after', () => {
    assert.equal(wantsHelp(['tokens', '--help']), true);
    assert.equal(wantsHelp(['-h']), true);
    assert.equal(wantsHelp(['host-backup', '--', 'cmd', '--help']), false);
    assert.equal(wantsHelp(['status']), false);
  });

  it('converts numbers within their wire ranges', () => {
    assert.equal(parseUint32('0'), 0);
    assert.equal(parseUint32('4294967295'), 4294967295);
    assert.throws(() => parseUint32('4294967296'), /too large/);
    assert.throws(() => parseUint32('-1'), /whole number >= 0/);
    assert.throws(() => parseUint32('1.5'), /whole number >= 0/);
    assert.equal(parseInt32('-5'), -5);
    assert.equal(parseInt32('+7'), 7);
    assert.throws(() => parseInt32('2147483648'), /out of range/);
    assert.throws(() => parseInt32('x'), /expected a whole number/);
  });

  it('accepts exactly true and false for booleans', () => {
    assert.equal(parseBool('true'), true);
    assert.equal(parseBool('false'), false);
    assert.throws(() => parseBool('yes'), /expected true or false, got "yes"/);
  });

  it('reads --since as a span back from now or as a local date and time, and refuses anything else', () => {
    const now = new Date(2026, 11, 6, 5, 0, 0).getTime();
    assert.equal(sinceUnixMs(parseSince('2h'), now), new Date(2026, 11, 6, 3, 0, 0).getTime());
    assert.equal(sinceUnixMs(parseSince('2026-12-06T03:00'), now), new Date(2026, 11, 6, 3, 0, 0).getTime());
    assert.equal(sinceUnixMs(parseSince('2026-12-06 03:00:30'), now), new Date(2026, 11, 6, 3, 0, 30).getTime());
    assert.equal(sinceUnixMs(parseSince('2026-12-06'), now), new Date(2026, 11, 6).getTime(), 'local midnight');
    assert.equal(sinceUnixMs(parseSince('2026-12-06T03:00Z'), now), Date.UTC(2026, 11, 6, 3));
    assert.throws(() => parseSince('2'), /expected a duration such as 30m or 2h, or a time such as 2026-12-06T03:00/);
    assert.throws(() => parseSince('yesterday'), /got "yesterday"/);
    assert.throws(() => parseSince('2026-13-45T03:00'), /not a valid date and time/);
  });
});

import { strict as assert } from 'node:assert';
import {
  type OptionSpec,
  parseArgs,
  parseBool,
  parseInt32,
  parsePositiveInt,
  parseString,
  parseText,
  parseUint32,
  wantsHelp,
} from '../../../ctl/args';
import { UsageError } from '../../../common/util/usage-error';

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

describe('ctl args', () => {
  it('reads options with separate and inline values, and flags', () => {
    const args = parseArgs(['--host', 'h1', '--limit=5', '--follow'], SPECS);
    assert.equal(args.get('host'), 'h1');
    assert.equal(args.get('limit'), 5);
    assert.equal(args.flag('follow'), true);
    assert.equal(args.has('reason'), false);
    assert.equal(args.get('reason'), undefined);
    assert.equal(args.rest, undefined);
  });

  it('refuses an unknown option, naming it', () => {
    usageError(() => parseArgs(['--host', 'h', '--hots', 'x'], SPECS), /unknown option --hots/);
    usageError(() => parseArgs(['--bogus=1'], SPECS), /unknown option --bogus$/);
    usageError(() => parseArgs(['-x'], SPECS), /unknown option -x/);
  });

  it('refuses an option without its value, naming the option and the placeholder', () => {
    usageError(() => parseArgs(['--host'], SPECS), /option --host needs a value \(H\)/);
    usageError(() => parseArgs(['--host', '--follow'], SPECS), /option --host needs a value/);
  });

  it('refuses a value given to a flag', () => {
    usageError(() => parseArgs(['--follow=yes'], SPECS), /option --follow takes no value/);
  });

  it('names the option whose value does not convert', () => {
    usageError(() => parseArgs(['--limit', 'ten'], SPECS), /option --limit: expected a whole number >= 0, got "ten"/);
    usageError(() => parseArgs(['--limit', '0'], SPECS), /option --limit: expected a whole number from 1/);
    usageError(() => parseArgs(['--host='], SPECS), /option --host: expected a non-empty value/);
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
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type HoldState,
  parseHoldState,
  parseOutcome,
  parseReleaseRequest,
  processAlive,
  readHoldState,
  writeJsonFile,
} from '../../../host-backup/hold-state';

const FILE = '/run/headroom/vzdump/101.json';
const HELD: HoldState = {
  pid: 4242,
  phase: 'held',
  host: 'pve-1',
  vm: '101',
  job: 'vzdump',
  token: { tokenId: 't-1', fencing: 7 },
  grantedAtUnixMs: 1_700_000_000_000,
};

describe('hold state files', () => {
  it('reads back what was written', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hold-state-')), 'x.json');
    writeJsonFile(file, HELD);
    assert.deepEqual(readHoldState(file), HELD);
    assert.equal(readHoldState(`${file}.missing`), undefined);
  });

  it('accepts every phase, and a token only where one is needed', () => {
    for (const phase of ['waiting', 'lost', 'released', 'failed'] as const) {
      const { token: _token, ...rest } = HELD;
      assert.equal(parseHoldState(JSON.stringify({ ...rest, phase, message: 'why' }), FILE).phase, phase);
    }
    assert.deepEqual(parseHoldState(JSON.stringify(HELD), FILE), HELD);
  });

  it('names the file and the key of what is wrong', () => {
    const bad: [unknown, RegExp][] = [
      [
        { ...HELD, phase: 'holding' },
        /101\.json: "phase" must be one of waiting, held, lost, released, failed, got "holding"/,
      ],
      [{ ...HELD, pid: -1 }, /101\.json: "pid" must be a positive integer/],
      [{ ...HELD, pid: '12' }, /101\.json: "pid" must be a number/],
      [{ ...HELD, vm: '' }, /101\.json: "vm" must be a non-empty string/],
      [{ ...HELD, token: undefined }, /101\.json: "token" is required when the phase is held/],
      [{ ...HELD, token: { tokenId: 't-1', fencing: '7' } }, /101\.json: "fencing" must be a number/],
      [{ ...HELD, message: 3 }, /101\.json: "message" must be a string/],
      [[HELD], /101\.json: expected a JSON object/],
    ];
    for (const [value, message] of bad) assert.throws(() => parseHoldState(JSON.stringify(value), FILE), message);
    assert.throws(() => parseHoldState('{"pid": 1,', FILE), /101\.json: not a headroomctl hold state file/);
  });

  it('parses release requests and outcomes', () => {
    assert.deepEqual(parseReleaseRequest('{"success":true,"message":"done"}', 'r'), { success: true, message: 'done' });
    assert.deepEqual(parseReleaseRequest('{"success":false}', 'r'), { success: false, message: '' });
    assert.throws(() => parseReleaseRequest('{"success":"yes"}', 'r'), /r: "success" must be true or false/);
    assert.equal(parseOutcome('success'), true);
    assert.equal(parseOutcome('failure'), false);
    assert.throws(() => parseOutcome('ok'), /expected success or failure, got "ok"/);
  });

  it('tells a live process from one that is gone', () => {
    assert.equal(processAlive(process.pid), true);
    // Pids are below the kernel's pid_max (at most 2^22): this one cannot exist.
    assert.equal(processAlive(2 ** 22 + 1), false);
  });
});

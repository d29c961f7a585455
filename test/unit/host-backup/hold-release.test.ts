import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../../common/util/log';
import { releaseHold } from '../../../host-backup/hold-release';
import { type HoldState, writeJsonFile } from '../../../host-backup/hold-state';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

const dirs: string[] = [];

/** A state file in a fresh directory, with `state` written to it when given. */
function stateFile(state?: Partial<HoldState>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hold-release-'));
  dirs.push(dir);
  const file = path.join(dir, '101.json');
  if (state) writeJsonFile(file, { pid: 4242, phase: 'released', host: 'pve-1', vm: '101', job: 'vzdump', ...state });
  return file;
}

/** Ends the hold of `file`; a holder that ended by itself leaves nothing to release on its behalf. */
function release(file: string, success: boolean) {
  return releaseHold({
    stateFile: file,
    success,
    message: '',
    client: () => assert.fail("nothing to release on the holder's behalf"),
    log: silent,
  });
}

describe('hold release', () => {
  after(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('says there is nothing to release when the state file is missing', async () => {
    const file = stateFile();
    assert.deepEqual(await release(file, true), {
      end: 'error',
      message: `nothing to release: ${file} does not exist`,
    });
  });

  it('reports what the holder recorded, and removes the state file', async () => {
    const file = stateFile({ phase: 'released', message: 'released token t-1 (success): done' });
    assert.deepEqual(await release(file, true), { end: 'done', message: 'released token t-1 (success): done' });
    assert.equal(fs.existsSync(file), false);
  });

  it('says the backup ran without its token when the token was lost', async () => {
    const file = stateFile({ phase: 'lost', token: { tokenId: 't-1', fencing: 7 }, message: 'revoked' });
    assert.deepEqual(await release(file, true), {
      end: 'not-held',
      message: 'the HYPERVISOR token for 101 on pve-1 was lost while it was held: revoked',
    });
  });

  it('counts a token never granted against a success only', async () => {
    const failed = { phase: 'failed' as const, message: 'denied' };
    assert.deepEqual(await release(stateFile(failed), true), { end: 'not-held', message: 'no token was held: denied' });
    assert.deepEqual(await release(stateFile(failed), false), { end: 'done', message: 'no token was held: denied' });
  });
});

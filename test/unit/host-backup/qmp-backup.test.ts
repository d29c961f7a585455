import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../../common/util/log';
import { runQmpBackup } from '../../../host-backup/qmp-backup';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

describe('qmp-backup run', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmp-backup-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (over: { target?: string } = {}) =>
    runQmpBackup({
      vm: 'vm1',
      socket: path.join(dir, 'absent.qmp'),
      target: over.target ?? path.join(dir, 'backups'),
      forceFull: false,
      consistencyFile: path.join(dir, 'consistency'),
      now: () => 1_700_000_000_000,
      signal: new AbortController().signal,
      log: silent,
    });

  it('fails, saying why, when QEMU cannot be reached, and tells host-backup the snapshot is only crash-consistent', async () => {
    const outcome = await run();
    assert.equal(outcome.status, 'failed');
    assert.equal(outcome.result, undefined);
    assert.match(outcome.failure!, /QMP socket .*absent\.qmp: connect ENOENT/);
    assert.equal(fs.readFileSync(path.join(dir, 'consistency'), 'utf8'), 'crash');
  });

  it('fails on a target that cannot be a catalog, before QEMU is asked anything', async () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const outcome = await run({ target: file });
    assert.equal(outcome.status, 'failed');
    assert.match(outcome.failure!, /a-file\/headroom-catalog\.json: ENOTDIR/);
    assert.equal(fs.readFileSync(path.join(dir, 'consistency'), 'utf8'), 'crash');
  });
});

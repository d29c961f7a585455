/** What the coordinator remembers of the checksum verifications it ran: the last of each backup, bounded. */
import { strict as assert } from 'node:assert';
import { BackupVerifications } from '../../../../coordinator/service/backup-verifications';

describe('backup verifications', () => {
  it("keeps each backup's last verification, forgetting the one verified longest ago past the bound", () => {
    let now = 1_000;
    const v = new BackupVerifications(() => now, 2);
    v.record('a', true);
    now = 2_000;
    v.record('b', false, 'checksum differs');
    now = 3_000;
    v.record('a', true);
    now = 4_000;
    v.record('c', true);
    assert.deepEqual(v.of('a'), { ok: true, problem: '', atUnixMs: 3_000 });
    assert.equal(v.of('b'), undefined, 'b was verified longest ago');
    assert.deepEqual(v.of('c'), { ok: true, problem: '', atUnixMs: 4_000 });
  });
});

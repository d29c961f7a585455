/** The chain breaks of a hypervisor run, read from a real catalog directory. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../../../common/util/log';
import { catalogChainBreaks } from '../../../../coordinator/metrics/chain-breaks';
import type { BackupRecord } from '../../../../host-backup/catalog/chain-rules';
import { ManifestStore, parseManifest } from '../../../../host-backup/catalog/manifest-store';

const T = Date.UTC(2026, 10, 29, 6);

function record(id: string, partial: Partial<BackupRecord>): BackupRecord {
  return {
    id,
    vm: 'vm1',
    disk: 'disk0',
    setId: `set-${id}`,
    kind: 'full',
    chainId: id,
    bitmap: 'headroom-1234abcd',
    bitmapPersistent: true,
    takenAtMs: T,
    durationMs: 1,
    bytes: 1,
    fileBytes: 1,
    virtualSize: 1,
    consistency: 'crash',
    file: `vm1/disk0/${id}.qcow2`,
    sha256: '88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589',
    ...partial,
  };
}

describe('chain breaks from the catalog', () => {
  const log = createLogger({ level: 'error' });

  it("counts the run's full backups whose reason is a broken chain, one per backup set", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-chain-'));
    const store = ManifestStore.open(dir, { create: true });
    store.write(record('old', { fullReasonCode: 'checkpoint-missing', takenAtMs: T - 86_400_000 }));
    store.write(record('asked', { fullReasonCode: 'requested' }));
    store.write(record('d0', { fullReasonCode: 'bitmap-missing', setId: 's' }));
    store.write(
      record('d1', { fullReasonCode: 'bitmap-missing', setId: 's', disk: 'disk1', file: 'vm1/disk1/d1.qcow2' }),
    );
    store.write(record('before-codes', { fullReason: 'an older manifest without the code' }));
    const breaks = catalogChainBreaks([dir, path.join(dir, 'not-a-catalog')], log);
    assert.deepEqual(breaks(['vm1', 'web-1'], T), ['bitmap-missing']);
    assert.deepEqual(breaks(['vm2'], T), []);
  });

  it('refuses a manifest with an unknown reason code, naming the key', () => {
    const text = JSON.stringify({ format: 'headroom-backup/1', ...record('x', { fullReasonCode: 'nope' as never }) });
    assert.throws(() => parseManifest(text, 'x.json'), /key "fullReasonCode" must be one of requested, /);
  });
});

/** The catalog directory: manifests round-trip, bad ones are refused naming the file and the key, names stay inside. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackupRecord } from '../../../../host-backup/catalog/chain-rules';
import { ManifestStore, parseManifest } from '../../../../host-backup/catalog/manifest-store';

const record: BackupRecord = {
  id: '20261129T060000Z-full-abcdef',
  vm: 'vm1',
  disk: 'disk0',
  setId: '20261129T060000Z-123456',
  kind: 'full',
  fullReason: 'a full backup was asked for',
  chainId: '20261129T060000Z-full-abcdef',
  bitmap: 'headroom-1234abcd',
  bitmapPersistent: true,
  takenAtMs: Date.UTC(2026, 10, 29, 6),
  durationMs: 1234,
  bytes: 8 << 20,
  fileBytes: 4,
  virtualSize: 8 << 20,
  consistency: 'crash',
  file: 'vm1/disk0/20261129T060000Z-full-abcdef.qcow2',
  sha256: '88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589', // of "abcd"
};

describe('manifest store', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-catalog-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('makes a directory a catalog once, and names its bitmap after its id', () => {
    assert.throws(() => ManifestStore.open(dir), /is not a Headroom backup directory/);
    const a = ManifestStore.open(dir, { create: true });
    const b = ManifestStore.open(dir);
    assert.equal(a.catalogId, b.catalogId);
    assert.equal(b.bitmapName, `headroom-${a.catalogId.slice(0, 8)}`);
  });

  it('round-trips a record, and checks its file by size and by SHA-256', async () => {
    const store = ManifestStore.open(dir, { create: true });
    store.write(record);
    assert.deepEqual(store.records(), [record]);
    assert.deepEqual(store.records('vm1', 'disk0'), [record]);
    assert.deepEqual(store.records('vm2'), []);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'vm1', 'disk0', `${record.id}.json`), 'utf8'));
    assert.equal(manifest.takenAt, '2026-11-29T06:00:00.000Z');
    assert.equal(store.fileIntact(record), false);
    fs.writeFileSync(store.pathOf(record), 'abcd');
    assert.equal(store.fileIntact(record), true);
    assert.deepEqual(await store.verify(record), { ok: true, actual: record.sha256 });
    fs.writeFileSync(store.pathOf(record), 'abce');
    const bad = await store.verify(record);
    assert.equal(bad.ok, false);
    assert.match(bad.problem ?? '', /the manifest says 88d4/);
  });

  it('remembers started backups until their end is known, and does not take the notes for manifests', () => {
    const store = ManifestStore.open(dir, { create: true });
    assert.deepEqual(store.interrupted('vm1', 'disk0'), []);
    store.started('vm1', 'disk0', 'b1');
    store.started('vm1', 'disk0', 'b2');
    store.started('vm1', 'disk1', 'b3');
    assert.deepEqual(store.interrupted('vm1', 'disk0'), ['b1', 'b2']);
    assert.deepEqual(store.records('vm1'), []);
    store.ended('vm1', 'disk0');
    assert.deepEqual(store.interrupted('vm1', 'disk0'), []);
    assert.deepEqual(store.interrupted('vm1', 'disk1'), ['b3']);
  });

  it('refuses a malformed manifest, naming the file and the key', () => {
    const text = (over: Record<string, unknown>) => JSON.stringify({ format: 'headroom-backup/1', ...record, ...over });
    assert.throws(() => parseManifest('{', 'm.json'), /^CatalogError: m\.json: not JSON/);
    assert.throws(
      () => parseManifest(text({ format: 'x' }), 'm.json'),
      /m\.json: key "format" must be "headroom-backup\/1"/,
    );
    assert.throws(
      () => parseManifest(text({ kind: 'diff' }), 'm.json'),
      /m\.json: key "kind" must be "full" or "incremental"/,
    );
    assert.throws(
      () => parseManifest(text({ bytes: -1 }), 'm.json'),
      /m\.json: key "bytes" must be a non-negative number/,
    );
    assert.throws(
      () => parseManifest(text({ kind: 'incremental' }), 'm.json'),
      /key "parentId" is required for an incremental/,
    );
    assert.throws(() => parseManifest(text({ sha256: 'zz' }), 'm.json'), /key "sha256" must be 64 hex digits/);
    assert.throws(
      () => parseManifest(text({ file: '../../etc/passwd' }), 'm.json'),
      /key "file" must be a path inside the catalog directory/,
    );
    assert.throws(
      () => parseManifest(text({ bitmapPersistent: 'yes' }), 'm.json'),
      /key "bitmapPersistent" must be a boolean/,
    );
  });

  it('refuses VM and disk names that are not plain directory names', () => {
    const store = ManifestStore.open(dir, { create: true });
    assert.throws(() => store.diskDir('../x', 'disk0'), /VM name "\.\.\/x" must be/);
    assert.throws(() => store.diskDir('vm1', '..'), /disk name "\.\." must be/);
    assert.throws(() => store.write({ ...record, vm: 'a/b' }), /VM name "a\/b"/);
  });

  it('refuses a manifest filed under another disk', () => {
    const store = ManifestStore.open(dir, { create: true });
    store.write(record);
    fs.mkdirSync(path.join(dir, 'vm1', 'disk1'));
    fs.copyFileSync(
      path.join(dir, 'vm1', 'disk0', `${record.id}.json`),
      path.join(dir, 'vm1', 'disk1', `${record.id}.json`),
    );
    assert.throws(() => store.records('vm1'), /it describes vm1\/disk0, not vm1\/disk1/);
  });
});

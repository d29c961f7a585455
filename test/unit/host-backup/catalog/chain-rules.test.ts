/** The catalog's rules: when the next backup must be full and why, chain validity, and what a restore at a time reads. */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import {
  type BackupRecord,
  type BitmapObservation,
  CatalogError,
  type PlanInput,
  chainTo,
  planNextBackup,
  restoreChain,
} from '../../../../host-backup/catalog/chain-rules';
import { propertyRuns } from '../../../helpers/property-runs';

const T0 = Date.UTC(2026, 10, 29, 6, 0, 0);
const HOUR = 3_600_000;
const SIZE = 8 << 20;
const GOOD: BitmapObservation = { persistent: true, recording: true, inconsistent: false, busy: false };

function rec(
  id: string,
  kind: 'full' | 'incremental',
  hour: number,
  parent?: BackupRecord,
  extra: Partial<BackupRecord> = {},
): BackupRecord {
  return {
    id,
    vm: 'vm1',
    disk: 'disk0',
    setId: `set-${id}`,
    kind,
    fullReason: kind === 'full' ? 'no previous backup of this disk in the catalog' : undefined,
    parentId: parent?.id,
    chainId: parent ? parent.chainId : id,
    bitmap: 'headroom-1234abcd',
    bitmapPersistent: true,
    takenAtMs: T0 + hour * HOUR,
    durationMs: 1000,
    bytes: 65536,
    fileBytes: 262144,
    virtualSize: SIZE,
    consistency: 'crash',
    file: `vm1/disk0/${id}.qcow2`,
    sha256: 'a'.repeat(64),
    ...extra,
  };
}

const full = rec('f1', 'full', 0);
const inc1 = rec('i1', 'incremental', 1, full);
const inc2 = rec('i2', 'incremental', 2, inc1);
const chain = [inc2, full, inc1]; // any order

function plan(over: Partial<PlanInput> = {}) {
  return planNextBackup({ records: chain, disk: { virtualSize: SIZE, bitmap: GOOD }, fileIntact: () => true, ...over });
}

function fullCode(over: Partial<PlanInput>): string {
  const p = plan(over);
  assert.equal(p.kind, 'full');
  return p.kind === 'full' ? p.reason.code : '';
}

describe('catalog rules: the next backup', () => {
  it('is incremental on top of the latest backup when the bitmap and the chain are sound', () => {
    const p = plan();
    assert.equal(p.kind, 'incremental');
    if (p.kind !== 'incremental') return;
    assert.equal(p.parent.id, 'i2');
    assert.deepEqual(
      p.chain.map((r) => r.id),
      ['f1', 'i1', 'i2'],
    );
  });

  it('is full when there is no previous backup, or one was asked for', () => {
    assert.equal(fullCode({ records: [] }), 'no-previous-backup');
    assert.equal(fullCode({ forceFull: true }), 'requested');
  });

  it('is full when the bitmap is missing, and says whether it was persistent', () => {
    const gone = plan({ disk: { virtualSize: SIZE } });
    assert.equal(gone.kind === 'full' && gone.reason.code, 'bitmap-missing');
    assert.match(
      gone.kind === 'full' ? gone.reason.text : '',
      /headroom-1234abcd is missing: it was removed, or the disk was replaced/,
    );
    const volatile = planNextBackup({
      records: [full, inc1, { ...inc2, bitmapPersistent: false }],
      disk: { virtualSize: SIZE },
      fileIntact: () => true,
    });
    assert.match(volatile.kind === 'full' ? volatile.reason.text : '', /was not persistent .* lost it when it stopped/);
  });

  it('is full when an earlier backup was interrupted before its end was known, naming it', () => {
    const p = plan({ interrupted: ['20261129T070000Z-inc-abcdef'] });
    assert.equal(p.kind === 'full' && p.reason.code, 'interrupted');
    assert.match(p.kind === 'full' ? p.reason.text : '', /backup 20261129T070000Z-inc-abcdef was interrupted/);
    assert.equal(plan({ interrupted: [] }).kind, 'incremental');
  });

  it('is full when the bitmap is inconsistent (unclean shutdown) or disabled', () => {
    assert.equal(
      fullCode({ disk: { virtualSize: SIZE, bitmap: { ...GOOD, inconsistent: true } } }),
      'bitmap-inconsistent',
    );
    assert.equal(
      fullCode({ disk: { virtualSize: SIZE, bitmap: { ...GOOD, recording: false } } }),
      'bitmap-not-recording',
    );
  });

  it('is full when the disk was resized', () => {
    const p = plan({ disk: { virtualSize: SIZE * 2, bitmap: GOOD } });
    assert.equal(p.kind === 'full' && p.reason.code, 'disk-resized');
    assert.match(p.kind === 'full' ? p.reason.text : '', new RegExp(`from ${SIZE} to ${SIZE * 2} bytes`));
  });

  it('is full when a file of the chain is missing or changed, naming it', () => {
    const p = plan({ fileIntact: (r) => r.id !== 'i1' });
    assert.equal(p.kind === 'full' && p.reason.code, 'parent-missing');
    assert.match(p.kind === 'full' ? p.reason.text : '', /vm1\/disk0\/i1\.qcow2/);
  });

  it('is full when the chain is broken in the catalog (a parent without manifest)', () => {
    assert.equal(fullCode({ records: [full, inc2] }), 'chain-broken');
  });

  it('is full once the chain holds maxIncrementals incrementals, not before', () => {
    assert.equal(fullCode({ maxIncrementals: 2 }), 'chain-too-long');
    assert.equal(plan({ maxIncrementals: 3 }).kind, 'incremental');
    assert.equal(plan({ maxIncrementals: 0 }).kind, 'incremental');
  });

  it("with checkpoints (libvirt): full when the latest backup's checkpoint is gone, or its bitmap on this disk is; the bitmap rules apply to the checkpoint's", () => {
    const cp = { checkpoint: 'headroom-1234abcd-s2', libvirtUri: 'qemu:///system' };
    const records = [full, inc1, rec('i2', 'incremental', 2, inc1, cp)];
    const withCheckpoints = (checkpoints: PlanInput['disk']['checkpoints']) =>
      planNextBackup({ records, disk: { virtualSize: SIZE, checkpoints }, fileIntact: () => true });
    assert.equal(withCheckpoints(new Map([[cp.checkpoint, { bitmap: GOOD }]])).kind, 'incremental');
    const gone = withCheckpoints(new Map());
    assert.equal(gone.kind === 'full' && gone.reason.code, 'checkpoint-missing');
    assert.match(
      gone.kind === 'full' ? gone.reason.text : '',
      /checkpoint headroom-1234abcd-s2 is missing: .*redefined/,
    );
    const noBitmap = withCheckpoints(new Map([[cp.checkpoint, {}]]));
    assert.equal(noBitmap.kind === 'full' && noBitmap.reason.code, 'bitmap-missing');
    assert.match(noBitmap.kind === 'full' ? noBitmap.reason.text : '', /no usable bitmap on this disk/);
    const inconsistent = withCheckpoints(new Map([[cp.checkpoint, { bitmap: { ...GOOD, inconsistent: true } }]]));
    assert.equal(inconsistent.kind === 'full' && inconsistent.reason.code, 'bitmap-inconsistent');
    // Another checkpoint's sound bitmap does not stand in for the one the chain needs.
    const other = withCheckpoints(new Map([['headroom-1234abcd-s9', { bitmap: GOOD }]]));
    assert.equal(other.kind === 'full' && other.reason.code, 'checkpoint-missing');
  });

  it('checks the chain before the bitmap: a sound bitmap does not save a chain that cannot be read back', () => {
    assert.equal(fullCode({ fileIntact: () => false, disk: { virtualSize: SIZE } }), 'parent-missing');
  });
});

describe('catalog rules: chains', () => {
  it('refuses a parent that is not older, from another chain, or a chain without its full backup', () => {
    assert.throws(
      () => chainTo([full, { ...inc1, takenAtMs: full.takenAtMs }], { ...inc1, takenAtMs: full.takenAtMs }),
      /is not older than it/,
    );
    assert.throws(() => chainTo([full, inc1], { ...inc1, chainId: 'other' }), /belongs to another chain/);
    const orphan = rec('i9', 'incremental', 3, undefined, { parentId: 'nope', chainId: 'f1' });
    assert.throws(
      () => chainTo([full, orphan], orphan),
      (e: unknown) => e instanceof CatalogError && /parent nope is not in the catalog/.test(e.message),
    );
    assert.throws(() => chainTo([full], { ...full, chainId: 'f0' }), /chain f0 starts at f1 instead/);
  });
});

describe('catalog rules: restore points', () => {
  it('takes the latest backup at or before the time, with its ancestors', () => {
    assert.deepEqual(
      restoreChain(chain, inc1.takenAtMs).map((r) => r.id),
      ['f1', 'i1'],
    );
    assert.deepEqual(
      restoreChain(chain, inc1.takenAtMs + HOUR / 2).map((r) => r.id),
      ['f1', 'i1'],
    );
    assert.deepEqual(
      restoreChain(chain, Number.MAX_SAFE_INTEGER).map((r) => r.id),
      ['f1', 'i1', 'i2'],
    );
  });

  it('says when the time is before the first backup', () => {
    assert.throws(
      () => restoreChain(chain, T0 - 1),
      /no backup taken at or before 2026-11-29T05:59:59.999Z; the first is from 2026-11-29T06:00:00.000Z/,
    );
    assert.throws(() => restoreChain([], T0), /no backups/);
  });

  it('on random histories of chains: the restored chain ends at the latest backup not after the time, starts full, and links each to its parent', () => {
    // A history: each step is a full backup (new chain) or an incremental on the latest, one to three hours apart.
    const historyArb = fc.array(fc.record({ full: fc.boolean(), gap: fc.integer({ min: 1, max: 3 }) }), {
      minLength: 1,
      maxLength: 30,
    });
    fc.assert(
      fc.property(historyArb, fc.integer({ min: -2, max: 100 }), (steps, atHour) => {
        const records: BackupRecord[] = [];
        let hour = 0;
        for (const [i, s] of steps.entries()) {
          hour += s.gap;
          const last = records[records.length - 1];
          records.push(s.full || !last ? rec(`b${i}`, 'full', hour) : rec(`b${i}`, 'incremental', hour, last));
        }
        const at = T0 + atHour * HOUR;
        const eligible = records.filter((r) => r.takenAtMs <= at);
        if (eligible.length === 0) {
          assert.throws(() => restoreChain(records, at), CatalogError);
          return;
        }
        const got = restoreChain([...records].reverse(), at);
        assert.equal(got[got.length - 1].id, eligible[eligible.length - 1].id);
        assert.equal(got[0].kind, 'full');
        for (let i = 1; i < got.length; i++) assert.equal(got[i].parentId, got[i - 1].id);
        assert.ok(got.slice(1).every((r) => r.kind === 'incremental'));
      }),
      { numRuns: propertyRuns(300) },
    );
  });
});

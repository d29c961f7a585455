/** Retention: what a policy keeps, and that nothing a kept backup reads through is ever removed. */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { BackupRecord } from '../../../../host-backup/catalog/chain-rules';
import { applyRetention } from '../../../../host-backup/catalog/retention';
import { propertyRuns } from '../../../helpers/property-runs';

const T0 = Date.UTC(2026, 10, 2, 0, 0, 0); // a Monday
const HOUR = 3_600_000;

function rec(id: string, hour: number, parent?: BackupRecord): BackupRecord {
  return {
    id,
    vm: 'vm1',
    disk: 'disk0',
    setId: id,
    kind: parent ? 'incremental' : 'full',
    parentId: parent?.id,
    chainId: parent ? parent.chainId : id,
    bitmap: 'headroom-1',
    bitmapPersistent: true,
    takenAtMs: T0 + hour * HOUR,
    durationMs: 1,
    bytes: 1,
    fileBytes: 1,
    virtualSize: 1,
    consistency: 'crash',
    file: `vm1/disk0/${id}.qcow2`,
    sha256: '0'.repeat(64),
  };
}

/** A history: a full backup every `fullEvery` backups, incrementals between, `gap` hours apart. */
function history(steps: ReadonlyArray<{ full: boolean; gap: number }>): BackupRecord[] {
  const out: BackupRecord[] = [];
  let hour = 0;
  for (const [i, s] of steps.entries()) {
    hour += s.gap;
    const last = out[out.length - 1];
    out.push(
      s.full || !last ? rec(`b${String(i).padStart(2, '0')}`, hour) : rec(`b${String(i).padStart(2, '0')}`, hour, last),
    );
  }
  return out;
}

describe('retention', () => {
  it('keeps the latest of each of the last N days, and what they read through', () => {
    // Day 1: full at 01:00, inc at 13:00. Day 2: inc at 01:00, full at 13:00. Day 3: inc at 01:00.
    const f1 = rec('f1', 1);
    const i1 = rec('i1', 13, f1);
    const i2 = rec('i2', 25, i1);
    const f2 = rec('f2', 37);
    const i3 = rec('i3', 49, f2);
    const d = applyRetention([f1, i1, i2, f2, i3], { keepDaily: 2 });
    assert.deepEqual(
      d.keep.map((r) => r.id),
      ['f2', 'i3'],
    );
    assert.deepEqual(
      d.remove.map((r) => r.id),
      ['i2', 'i1', 'f1'],
    );
    assert.deepEqual(d.why.get('f2'), ['daily 2026-11-03', 'base of i3']);
    assert.deepEqual(d.why.get('i3'), ['latest (the next incremental builds on it)', 'daily 2026-11-04']);

    const three = applyRetention([f1, i1, i2, f2, i3], { keepDaily: 3 });
    assert.deepEqual(
      three.keep.map((r) => r.id),
      ['f1', 'i1', 'f2', 'i3'],
      "i1 is day 1's latest; f1 is its base; i2 is not needed",
    );
  });

  it('counts weeks from Monday (UTC), and keeps the latest backup whatever the policy', () => {
    const sun = rec('sun', -1); // Sunday 23:00
    const mon = rec('mon', 0);
    assert.deepEqual(
      applyRetention([sun, mon], { keepWeekly: 2 }).keep.map((r) => r.id),
      ['sun', 'mon'],
    );
    assert.deepEqual(
      applyRetention([sun, mon], { keepWeekly: 1 }).keep.map((r) => r.id),
      ['mon'],
    );
    assert.deepEqual(
      applyRetention([sun, mon], { keepLast: 0 }).keep.map((r) => r.id),
      ['mon'],
    );
    assert.deepEqual(applyRetention([], { keepLast: 3 }), { keep: [], remove: [], why: new Map() });
  });

  it("on random histories and policies: kept chains are whole, the policy's picks are kept, the rest removed newest first", () => {
    const stepsArb = fc.array(fc.record({ full: fc.boolean(), gap: fc.integer({ min: 1, max: 40 }) }), {
      minLength: 1,
      maxLength: 40,
    });
    const policyArb = fc.record({ keepLast: fc.nat(5), keepDaily: fc.nat(7), keepWeekly: fc.nat(4) });
    fc.assert(
      fc.property(stepsArb, policyArb, (steps, policy) => {
        const records = history(steps);
        const d = applyRetention([...records].reverse(), policy);
        const kept = new Set(d.keep.map((r) => r.id));
        assert.equal(d.keep.length + d.remove.length, records.length);
        assert.ok(d.remove.every((r) => !kept.has(r.id)));
        for (const r of d.keep)
          if (r.parentId) assert.ok(kept.has(r.parentId), `${r.id} is kept but its parent ${r.parentId} is not`);
        const newest = [...records].reverse();
        assert.ok(kept.has(newest[0].id));
        for (const r of newest.slice(0, policy.keepLast)) assert.ok(kept.has(r.id));
        const days = [...new Set(newest.map((r) => new Date(r.takenAtMs).toISOString().slice(0, 10)))].slice(
          0,
          policy.keepDaily,
        );
        for (const day of days)
          assert.ok(kept.has(newest.find((r) => new Date(r.takenAtMs).toISOString().startsWith(day))!.id));
        for (let i = 1; i < d.remove.length; i++) assert.ok(d.remove[i - 1].takenAtMs >= d.remove[i].takenAtMs);
      }),
      { numRuns: propertyRuns(300) },
    );
  });
});

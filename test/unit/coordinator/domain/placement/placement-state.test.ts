import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { PlacementState } from '../../../../../coordinator/domain/placement/placement-state';
import type { PlacementEvent } from '../../../../../coordinator/domain/placement/types';
import { propertyRuns } from '../../../../helpers/property-runs';

const U1 = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
const U2 = '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9';

const migration = (step: Extract<PlacementEvent, { type: 'migration' }>['step'], uuid = U1): PlacementEvent => ({
  type: 'migration',
  uuid,
  name: 'web1',
  step,
});

describe('placement state', () => {
  it('says when a migration out starts and when the VM has left', () => {
    const s = new PlacementState();
    s.apply({ type: 'listed', vms: [{ uuid: U1.toUpperCase(), name: 'web1', state: 'running' }] });
    const started = s.apply(migration('outgoing'));
    assert.deepEqual(
      started.map((c) => [c.type, c.direction]),
      [['migration-started', 'out']],
    );
    assert.equal(s.get(U1)?.migrating, 'out');
    // The same step again (a post-copy switch-over after Suspended Migrated) starts nothing new.
    assert.deepEqual(s.apply(migration('outgoing')), []);
    const ended = s.apply(migration('left'));
    assert.deepEqual(
      ended.map((c) => c.type === 'migration-ended' && c.outcome),
      ['left'],
    );
    assert.equal(s.get(U1), undefined);
  });

  it('says when a VM arrives, and when a migration out fails and the VM runs on here', () => {
    const s = new PlacementState();
    assert.deepEqual(
      s.apply(migration('incoming', U2)).map((c) => c.type),
      ['migration-started'],
    );
    const arrived = s.apply(migration('resumed', U2));
    assert.deepEqual(
      arrived.map((c) => c.type === 'migration-ended' && [c.direction, c.outcome]),
      [['in', 'arrived']],
    );
    assert.equal(s.get(U2)?.state, 'running');
    s.apply(migration('outgoing', U2));
    const failed = s.apply(migration('resumed', U2));
    assert.deepEqual(
      failed.map((c) => c.type === 'migration-ended' && [c.direction, c.outcome]),
      [['out', 'failed']],
    );
    assert.equal(s.get(U2)?.migrating, undefined);
  });

  it('treats Stopped Failed of a VM that is not arriving as a stop, not a migration', () => {
    const s = new PlacementState();
    s.apply({ type: 'listed', vms: [{ uuid: U1, name: 'web1', state: 'running' }] });
    assert.deepEqual(s.apply(migration('failed')), []);
    assert.equal(s.get(U1)?.state, 'stopped');
  });

  it('keeps one entry per UUID and lets a name resolve to at most one VM, for any sequence of events', () => {
    const uuid = fc.constantFrom(U1, U2, U1.toUpperCase(), '11111111-2222-4333-8444-555555555555');
    const name = fc.constantFrom('web1', 'db1', 'app');
    const state = fc.constantFrom('running' as const, 'paused' as const, 'stopped' as const);
    const event: fc.Arbitrary<PlacementEvent> = fc.oneof(
      fc.record({
        type: fc.constant('listed' as const),
        vms: fc.array(fc.record({ uuid, name, state }), { maxLength: 4 }),
      }),
      fc.record({ type: fc.constant('state' as const), uuid, name, state }),
      fc.record({
        type: fc.constant('migration' as const),
        uuid,
        name,
        step: fc.constantFrom(
          'incoming' as const,
          'outgoing' as const,
          'resumed' as const,
          'left' as const,
          'failed' as const,
        ),
      }),
      fc.record({ type: fc.constant('removed' as const), uuid }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const s = new PlacementState();
        const migrating = new Map<string, string>();
        for (const e of events) {
          for (const c of s.apply(e)) {
            // A migration ends only after it started (or a listing lost the VM), and never starts twice.
            if (c.type === 'migration-started') migrating.set(c.vm.uuid, c.direction);
            else migrating.delete(c.vm.uuid);
          }
          const vms = s.all();
          const uuids = vms.map((v) => v.uuid);
          assert.equal(new Set(uuids).size, uuids.length, 'one entry per UUID');
          for (const v of vms) {
            assert.equal(v.uuid, v.uuid.toLowerCase());
            assert.equal(s.aliases().resolve('vm', v.uuid.toUpperCase()), v.uuid);
            assert.equal(v.migrating, migrating.get(v.uuid));
          }
          const conflicted = new Set(
            s
              .aliases()
              .conflicts()
              .map((c) => c.alias),
          );
          for (const n of new Set(vms.map((v) => v.name))) {
            const named = vms.filter((v) => v.name === n);
            if (named.length > 1) assert.ok(conflicted.has(n), `${n} names ${named.length} VMs and is reported`);
            else assert.equal(s.aliases().resolve('vm', n), named[0].uuid);
          }
        }
      }),
      { numRuns: propertyRuns(300) },
    );
  });
});

import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { AliasTable, type VmAliases } from '../../../../coordinator/domain/vm-identity';
import { propertyRuns } from '../../../helpers/property-runs';

const U1 = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
const U2 = '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9';

describe('VM identity (alias table)', () => {
  const table = new AliasTable([
    { uuid: U1.toUpperCase(), name: 'web1', vmid: '101' },
    { uuid: U2, name: 'db1' },
  ]);

  it('resolves a libvirt name, a Proxmox VMID and the UUID in any case to the lower-case UUID', () => {
    for (const given of ['web1', '101', U1, U1.toUpperCase()]) assert.equal(table.resolve('vm', given), U1);
    assert.equal(table.resolve('vm', 'db1'), U2);
  });

  it('leaves a name no source knows as it is: a VM named by its agent’s vm: setting', () => {
    assert.equal(table.resolve('vm', 'vm-7'), 'vm-7');
  });

  it('shows the friendly name with the start of the UUID', () => {
    assert.equal(table.display(U1), 'web1 (8c3f1a2b…)');
    assert.equal(table.display('vm-7'), 'vm-7');
    assert.equal(table.nameOf(U2), 'db1');
  });

  it('reports a name that names two VMs, and refuses to resolve it, naming the field', () => {
    const clash = new AliasTable([
      { uuid: U1, name: 'web1' },
      { uuid: U2, name: 'web1', vmid: '101' },
    ]);
    assert.deepEqual(clash.conflicts(), [{ alias: 'web1', uuids: [U2, U1].sort() }]);
    assert.throws(
      () => clash.resolve('hello.vm', 'web1'),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'hello.vm' && /names 2 VMs/.test(e.message),
    );
    assert.equal(clash.resolve('vm', '101'), U2);
  });

  it('refuses an entry whose uuid is not a UUID, naming the field', () => {
    assert.throws(
      () => new AliasTable([{ uuid: 'web1' }], 'placement.static'),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'placement.static',
    );
  });

  it('keeps one identity per UUID and lets a name resolve to at most one identity, for any entries', () => {
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
    const uuid = fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(12)).map((p) => p.join('-'));
    // Few distinct UUIDs and names, so that collisions (the interesting case) are frequent.
    const entry = fc.record(
      {
        uuid: fc.constantFrom(U1, U2, U1.toUpperCase()).chain((u) => fc.oneof(fc.constant(u), uuid)),
        name: fc.constantFrom('web1', 'db1', 'app', '101'),
        vmid: fc.constantFrom('101', '102', '103'),
      },
      { requiredKeys: ['uuid'] },
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 8 }), (entries: VmAliases[]) => {
        const t = new AliasTable(entries);
        const conflicted = new Set(t.conflicts().map((c) => c.alias));
        for (const e of entries) {
          // A UUID is its own identity, whatever its case and whatever else names it.
          assert.equal(t.resolve('vm', e.uuid), e.uuid.toLowerCase());
          for (const alias of [e.name, e.vmid]) {
            if (!alias) continue;
            const uuids = new Set(
              entries.filter((x) => x.name === alias || x.vmid === alias).map((x) => x.uuid.toLowerCase()),
            );
            if (uuids.size > 1) {
              assert.ok(conflicted.has(alias));
              assert.throws(() => t.resolve('vm', alias), InvalidArgumentError);
            } else {
              assert.equal(t.resolve('vm', alias), e.uuid.toLowerCase());
            }
          }
        }
      }),
      { numRuns: propertyRuns(300) },
    );
  });
});

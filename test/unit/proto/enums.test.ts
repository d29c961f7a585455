import { strict as assert } from 'node:assert';
import * as enums from '../../../proto/enums';
import { packageDefinition } from '../../../proto';

/** Every enum of the contract, by its full name in the loaded descriptor. */
const ENUMS: Record<string, enums.WireEnum<string, string>> = {
  'headroom.v1.TokenKind': enums.tokenKind,
  'headroom.v1.Enforcement': enums.enforcement,
  'headroom.v1.QuiesceState': enums.quiesceState,
  'headroom.v1.Consistency': enums.consistency,
  'headroom.v1.DenyReason': enums.denyReason,
  'headroom.v1.Role': enums.role,
  'headroom.v1.HistoryEventType': enums.historyEventType,
  'headroom.v1.BackupRunState': enums.backupRunState,
};

describe('wire enums', () => {
  it('name every value of the contract but UNSPECIFIED, in its order, and convert both ways', () => {
    for (const [full, e] of Object.entries(ENUMS)) {
      const values = (packageDefinition[full] as { type: { value: { name: string; number: number }[] } }).type.value;
      const wire = values.filter((v) => v.number !== 0).map((v) => v.name);
      assert.deepEqual(
        e.names.map((n) => e.toWire(n)),
        wire,
        full,
      );
      for (const n of e.names) assert.equal(e.fromWire(e.toWire(n)), n, full);
    }
  });

  it('keep the short names people and the store use', () => {
    assert.deepEqual([...enums.tokenKind.names], ['GUEST', 'HYPERVISOR']);
    assert.equal(enums.tokenKind.toWire('HYPERVISOR'), 'TOKEN_KIND_HYPERVISOR');
    assert.equal(enums.historyEventType.fromWire('HISTORY_EVENT_TYPE_VM_THAWED'), 'VM_THAWED');
    assert.equal(enums.backupRunState.toWire('CANCELLED'), 'BACKUP_RUN_STATE_CANCELLED');
  });

  it('know nothing of UNSPECIFIED, of a short name on the wire, or of a number from a newer peer, and show it as it came', () => {
    for (const value of ['TOKEN_KIND_UNSPECIFIED', 'GUEST', 7, undefined])
      assert.equal(enums.tokenKind.fromWire(value), undefined, String(value));
    assert.equal(enums.tokenKind.show('TOKEN_KIND_GUEST'), 'GUEST');
    assert.equal(enums.tokenKind.show(7), '7');
  });
});

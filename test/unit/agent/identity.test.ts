import { strict as assert } from 'node:assert';
import { PRODUCT_UUID_PATH, resolveVmIdentity } from '../../../agent/identity';

const enoent = () => {
  throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
};

describe('VM identity', () => {
  it('uses the configured vm first, without reading anything', () => {
    const id = resolveVmIdentity('db-1', {
      readFile: () => assert.fail('read'),
      hostname: () => assert.fail('hostname'),
    });
    assert.deepEqual(id, { vm: 'db-1', source: 'config' });
  });

  it('uses the SMBIOS system UUID, lower-cased', () => {
    const id = resolveVmIdentity('', {
      readFile: (p) => {
        assert.equal(p, PRODUCT_UUID_PATH);
        return '4C4C4544-0042-3510-8052-B4C04F564433\n';
      },
      hostname: () => 'guest',
    });
    assert.deepEqual(id, { vm: '4c4c4544-0042-3510-8052-b4c04f564433', source: 'smbios' });
  });

  it('falls back to the hostname when the UUID file is absent or unreadable', () => {
    const absent = resolveVmIdentity(undefined, { readFile: enoent, hostname: () => 'guest-a' });
    assert.equal(absent.vm, 'guest-a');
    assert.equal(absent.source, 'hostname');
    assert.match(absent.note!, /cannot read \/sys\/class\/dmi\/id\/product_uuid \(ENOENT\)/);
    const denied = resolveVmIdentity(undefined, {
      readFile: () => {
        throw Object.assign(new Error('denied'), { code: 'EACCES' });
      },
      hostname: () => 'guest-b',
    });
    assert.deepEqual([denied.vm, denied.source], ['guest-b', 'hostname']);
    assert.match(denied.note!, /EACCES/);
  });

  it('falls back to the hostname when firmware left a placeholder or garbage', () => {
    for (const content of [
      '00000000-0000-0000-0000-000000000000',
      'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
      'Not Settable',
      '',
    ]) {
      const id = resolveVmIdentity('', { readFile: () => content, hostname: () => 'guest-c' });
      assert.deepEqual([id.vm, id.source], ['guest-c', 'hostname'], content);
    }
  });
});

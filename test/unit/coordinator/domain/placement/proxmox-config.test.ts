import { strict as assert } from 'node:assert';
import { parseProxmoxConfig } from '../../../../../coordinator/domain/placement/proxmox-config';

describe('Proxmox guest config', () => {
  it('reads name and the smbios1 uuid of the current config, not of a snapshot section', () => {
    const text = [
      'boot: order=scsi0',
      'name: web1',
      'smbios1: uuid=8C3F1A2B-5D6E-4F70-8192-A3B4C5D6E7F8,manufacturer=QEMU',
      '',
      '[before-upgrade]',
      'name: web1-old',
      'smbios1: uuid=00000000-0000-4000-8000-000000000000',
    ].join('\n');
    assert.deepEqual(parseProxmoxConfig('101', text), {
      vmid: '101',
      name: 'web1',
      uuid: '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8',
    });
  });

  it('reads a container’s hostname; it has no SMBIOS UUID', () => {
    assert.deepEqual(parseProxmoxConfig('200', 'arch: amd64\nhostname: ct1\n'), { vmid: '200', name: 'ct1' });
  });
});

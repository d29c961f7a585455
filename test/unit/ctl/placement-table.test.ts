import { strict as assert } from 'node:assert';
import { renderPlacement, vmLabel } from '../../../ctl/placement-table';
import type { HostInfo__Output } from '../../../proto/generated/headroom/v1';

const U1 = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';

describe('ctl placement table', () => {
  it('shows a VM known by its UUID with its name first', () => {
    assert.equal(vmLabel(U1, 'web1'), 'web1 (8c3f1a2b…)');
    assert.equal(vmLabel('vm-7', ''), 'vm-7');
  });

  it("shows the host's VMs with state, connected agent and migration, and nothing without placement", () => {
    const host = {
      host: 'pve1',
      placementSource: 'libvirt',
      placement: [
        { uuid: U1, name: 'web1', vmid: '', state: 'paused', migrating: 'out', agentConnected: true },
        {
          uuid: '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9',
          name: 'db1',
          vmid: '102',
          state: 'running',
          migrating: '',
          agentConnected: false,
        },
      ],
    } as unknown as HostInfo__Output;
    const lines = renderPlacement([host]).split('\n');
    assert.match(lines[0], /^VMS ON pve1 \(libvirt\)\s+UUID\s+VMID\s+STATE\s+AGENT\s+MIGRATING$/);
    assert.match(lines[1], /^db1\s+0b1c2d3e-\S+\s+102\s+running\s+-\s+-$/);
    assert.match(lines[2], /^web1\s+8c3f1a2b-\S+\s+-\s+paused\s+connected\s+leaving \(hypervisor backups wait\)$/);
    assert.equal(renderPlacement([{ ...host, placementSource: '' }]), '');
  });
});

/**
 * The placement of the coordinator's own host (coordinator.yaml's `placement`), as `agents` and `status`
 * show it: each VM with its state, whether its agent is connected, and whether it is migrating.
 */
import type { HostInfo__Output, PlacedVm__Output } from '../proto/generated/headroom/v1';
import { formatTable } from './table';

/** `web1 (8c3f1a2b…)`: a VM known by its UUID, shown by its name too. */
export function vmLabel(vm: string, name: string): string {
  return name && name !== vm ? `${name} (${vm.slice(0, 8)}…)` : vm;
}

// Its HYPERVISOR backups wait until the migration ends.
const MIGRATING: Record<string, string> = {
  in: 'arriving (hypervisor backups wait)',
  out: 'leaving (hypervisor backups wait)',
};

/** The placement table of the hosts that have one; '' when none has. */
export function renderPlacement(hosts: readonly HostInfo__Output[]): string {
  const withPlacement = hosts.filter((h) => h.placementSource);
  if (withPlacement.length === 0) return '';
  return withPlacement
    .map((h) =>
      formatTable(
        [
          { header: `VMS ON ${h.host} (${h.placementSource})`, maxWidth: 48 },
          { header: 'UUID' },
          { header: 'VMID' },
          { header: 'STATE' },
          { header: 'AGENT' },
          { header: 'MIGRATING' },
        ],
        [...h.placement]
          .sort((a, b) => a.name.localeCompare(b.name))
          .map((v: PlacedVm__Output) => [
            v.name,
            v.uuid,
            v.vmid || '-',
            v.state,
            v.agentConnected ? 'connected' : '-',
            MIGRATING[v.migrating] ?? '-',
          ]),
        { empty: `no VMs on ${h.host} (${h.placementSource})` },
      ),
    )
    .join('\n\n');
}

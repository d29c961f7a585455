/**
 * Placement from coordinator.yaml's `placement.static` list: for hosts without libvirt or Proxmox, or VMs
 * they do not manage. It never changes while the coordinator runs, and says nothing of run state.
 */
import type { PlacedVm, PlacementEvent, PlacementSource } from '../domain/placement/types';

export interface StaticVm {
  name: string;
  uuid: string;
  vmid?: string;
}

export class StaticSource implements PlacementSource {
  readonly kind = 'static';

  constructor(private readonly vms: readonly StaticVm[]) {}

  async start(emit: (event: PlacementEvent) => void): Promise<void> {
    emit({
      type: 'listed',
      vms: this.vms.map((v): PlacedVm => ({ ...v, uuid: v.uuid.toLowerCase(), state: 'unknown' })),
    });
  }

  async stop(): Promise<void> {}
}

/**
 * Placement: which VMs run on this host, with their names, and when one migrates in or out. One interface
 * (PlacementSource) over every source — libvirt, a static list, the Proxmox config directory — so that the
 * cluster can feed a leader the same events. The types every step shares live here.
 */

/** unknown: the source does not say (a static list, a Proxmox config file). */
export type RunState = 'running' | 'paused' | 'stopped' | 'unknown';
export type MigrationDirection = 'in' | 'out';

/** One VM on this host as the sources know it. */
export interface PlacedVm {
  /** SMBIOS UUID, lower case: the VM's identity. */
  uuid: string;
  name: string;
  /** Proxmox VMID, where known. */
  vmid?: string;
  state: RunState;
  /** Set while a migration of it is under way (in: arriving here; out: leaving). */
  migrating?: MigrationDirection;
}

/**
 * What a source reports. `listed` is everything it sees now (it replaces what it said before); the others
 * are changes of one VM. Migration steps are libvirt's lifecycle events: `incoming` (Started Migrated),
 * `outgoing` (Suspended Migrated / Post-copy), `resumed` (Resumed Migrated: arrived here, or a migration
 * out that failed), `left` (Stopped Migrated), `failed` (Stopped Failed of an incoming one).
 */
export type PlacementEvent =
  | { type: 'listed'; vms: PlacedVm[] }
  | { type: 'state'; uuid: string; name: string; state: RunState }
  | { type: 'migration'; uuid: string; name: string; step: 'incoming' | 'outgoing' | 'resumed' | 'left' | 'failed' }
  | { type: 'removed'; uuid: string };

/** What a change of placement means to the coordinator. */
export type PlacementChange =
  | { type: 'migration-started'; vm: PlacedVm; direction: MigrationDirection }
  | { type: 'migration-ended'; vm: PlacedVm; direction: MigrationDirection; outcome: 'arrived' | 'left' | 'failed' };

export interface PlacementSource {
  /** For logs and `status`: libvirt, static, proxmox. */
  readonly kind: string;
  /** Starts watching; resolves once the first `listed` was emitted. @throws when the source cannot be read at all */
  start(emit: (event: PlacementEvent) => void): Promise<void>;
  stop(): Promise<void>;
}

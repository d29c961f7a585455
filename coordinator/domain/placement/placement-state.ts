/**
 * The placement of this host's VMs, folded from a source's events, and what each change means: a migration
 * that started or ended. Keeps one entry per UUID (the identity) and the alias table built from them. Pure.
 */
import { AliasTable, canonicalUuid } from '../vm-identity';
import type { PlacedVm, PlacementChange, PlacementEvent } from './types';

export class PlacementState {
  private readonly vms = new Map<string, PlacedVm>();
  private table = new AliasTable();

  /** Applies one event; returns the migrations it started or ended. Events naming no UUID change nothing. */
  apply(event: PlacementEvent): PlacementChange[] {
    const changes = event.type === 'listed' ? this.list(event.vms) : this.change(event);
    this.table = new AliasTable([...this.vms.values()]);
    return changes;
  }

  all(): PlacedVm[] {
    return [...this.vms.values()].map((v) => ({ ...v })).sort((a, b) => a.name.localeCompare(b.name));
  }

  get(uuid: string): PlacedVm | undefined {
    const vm = this.vms.get(uuid);
    return vm && { ...vm };
  }

  aliases(): AliasTable {
    return this.table;
  }

  private list(vms: readonly PlacedVm[]): PlacementChange[] {
    const changes: PlacementChange[] = [];
    const seen = new Set<string>();
    for (const listed of vms) {
      const uuid = canonicalUuid(listed.uuid);
      if (!uuid) continue;
      seen.add(uuid);
      // A listing cannot tell a migration under way: the one the events said goes on.
      const migrating = listed.migrating ?? this.vms.get(uuid)?.migrating;
      this.vms.set(uuid, { ...listed, uuid, ...(migrating ? { migrating } : {}) });
    }
    for (const [uuid, vm] of [...this.vms]) {
      if (seen.has(uuid)) continue;
      this.vms.delete(uuid);
      if (vm.migrating)
        changes.push({
          type: 'migration-ended',
          vm,
          direction: vm.migrating,
          outcome: vm.migrating === 'out' ? 'left' : 'failed',
        });
    }
    return changes;
  }

  private change(event: Exclude<PlacementEvent, { type: 'listed' }>): PlacementChange[] {
    const uuid = canonicalUuid(event.uuid);
    if (!uuid) return [];
    const known = this.vms.get(uuid);
    if (event.type === 'removed') {
      this.vms.delete(uuid);
      return known?.migrating ? [this.ended(known, known.migrating === 'out' ? 'left' : 'failed')] : [];
    }
    const vm: PlacedVm = known ? { ...known, name: event.name } : { uuid, name: event.name, state: 'stopped' };
    if (event.type === 'state') {
      this.vms.set(uuid, { ...vm, state: event.state });
      return [];
    }
    switch (event.step) {
      case 'incoming':
      case 'outgoing': {
        const direction = event.step === 'incoming' ? 'in' : 'out';
        this.vms.set(uuid, { ...vm, state: 'paused', migrating: direction });
        return vm.migrating === direction
          ? []
          : [{ type: 'migration-started', vm: { ...vm, migrating: direction }, direction }];
      }
      case 'resumed': {
        const { migrating, ...rest } = vm;
        this.vms.set(uuid, { ...rest, state: 'running' });
        return migrating ? [this.ended(vm, migrating === 'in' ? 'arrived' : 'failed')] : [];
      }
      case 'left':
        this.vms.delete(uuid);
        return [this.ended(vm, 'left')];
      case 'failed':
        // Stopped Failed of a VM not arriving is an ordinary failed start: it stays, stopped.
        if (vm.migrating !== 'in') {
          this.vms.set(uuid, { ...vm, state: 'stopped' });
          return [];
        }
        this.vms.delete(uuid);
        return [this.ended(vm, 'failed')];
    }
  }

  private ended(vm: PlacedVm, outcome: 'arrived' | 'left' | 'failed'): PlacementChange {
    const direction = vm.migrating ?? (outcome === 'left' ? 'out' : 'in');
    const { migrating: _, ...rest } = vm;
    return { type: 'migration-ended', vm: rest, direction, outcome };
  }
}

/**
 * One identity per VM. A guest is named three ways: its agent reports the SMBIOS UUID, libvirt knows the
 * domain by name (and the same UUID), Proxmox by VMID (whose `smbios1: uuid=` is that UUID). The alias table
 * maps every name and VMID the placement sources know to the UUID, so that every rule, the history and the
 * catalog see one VM. Pure: built from plain data.
 */
import { InvalidArgumentError } from './errors';

/** What a placement source knows of one VM's names. */
export interface VmAliases {
  /** The SMBIOS UUID, any case. */
  uuid: string;
  /** libvirt domain name, Proxmox `name:`/`hostname:`, or the static list's name. */
  name?: string;
  /** Proxmox VMID. */
  vmid?: string;
}

/** A name or VMID that names two VMs: it resolves to neither, and is reported. */
export interface AliasConflict {
  alias: string;
  uuids: string[];
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The canonical (lower-case) form of a UUID, or undefined when `value` is not one. */
export function canonicalUuid(value: string): string | undefined {
  return UUID_PATTERN.test(value) ? value.toLowerCase() : undefined;
}

export class AliasTable {
  private readonly byAlias = new Map<string, Set<string>>();
  private readonly names = new Map<string, string>();

  /** @throws InvalidArgumentError naming `field` when an entry's uuid is not a UUID. */
  constructor(vms: readonly VmAliases[] = [], field = 'uuid') {
    for (const vm of vms) {
      const uuid = canonicalUuid(vm.uuid);
      if (!uuid) throw new InvalidArgumentError(field, `"${vm.uuid}" is not a UUID`);
      for (const alias of [vm.name, vm.vmid]) {
        // A UUID as a name would shadow the VM whose UUID it is.
        if (!alias || canonicalUuid(alias)) continue;
        const set = this.byAlias.get(alias) ?? new Set();
        set.add(uuid);
        this.byAlias.set(alias, set);
      }
      if (vm.name && !this.names.has(uuid)) this.names.set(uuid, vm.name);
    }
  }

  /** Names and VMIDs that name more than one VM, sorted. */
  conflicts(): AliasConflict[] {
    return [...this.byAlias]
      .filter(([, uuids]) => uuids.size > 1)
      .map(([alias, uuids]) => ({ alias, uuids: [...uuids].sort() }))
      .sort((a, b) => a.alias.localeCompare(b.alias));
  }

  /**
   * The identity of the VM `given` names: a UUID (any case) is itself in lower case; a known name or VMID is
   * its VM's UUID; anything else is itself (a VM no placement source knows, named by its `vm:` setting).
   * @throws InvalidArgumentError naming `field` when `given` names two VMs.
   */
  resolve(field: string, given: string): string {
    const uuid = canonicalUuid(given);
    if (uuid) return uuid;
    const uuids = this.byAlias.get(given);
    if (!uuids) return given;
    if (uuids.size > 1)
      throw new InvalidArgumentError(
        field,
        `"${given}" names ${uuids.size} VMs (${[...uuids].sort().join(', ')}): give the UUID`,
      );
    return uuids.values().next().value!;
  }

  /** The friendly name of an identity, when a source gave one. */
  nameOf(identity: string): string | undefined {
    return this.names.get(identity);
  }

  /** For people: `web1 (8c3f1a2b…)` when the identity has a name, else the identity itself. */
  display(identity: string): string {
    const name = this.names.get(identity);
    return name && name !== identity ? `${name} (${identity.slice(0, 8)}…)` : identity;
  }
}

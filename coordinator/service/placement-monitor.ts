/**
 * This host's placement, as the one configured source (libvirt, a static list, the Proxmox directory)
 * reports it: folds its events (placement/placement-state.ts), resolves every VM name that reaches the
 * coordinator to one identity (domain/vm-identity.ts), and tells the coordinator when a VM starts or ends a
 * migration. Without a source, names resolve to themselves and UUIDs to their lower-case form.
 */
import type { Logger } from '../../common/util/log';
import { InvalidArgumentError } from '../domain/errors';
import type { AliasConflict } from '../domain/vm-identity';
import { PlacementState } from '../domain/placement/placement-state';
import type { PlacedVm, PlacementChange, PlacementEvent, PlacementSource } from '../domain/placement/types';
import type { Coordinator } from './coordinator';

export interface VmResolver {
  /** The identity of the VM `given` names. @throws InvalidArgumentError naming `field` when it names two VMs */
  resolve(field: string, given: string): string;
  /** The friendly name of an identity, when placement knows one. */
  nameOf(identity: string): string | undefined;
}

/**
 * As resolve, for the names coordinator.yaml wrote (hypervisorJobs, policy keys): an ambiguous one stays as
 * written (its conflict is logged), and then matches no VM rather than stop the coordinator.
 */
export function configuredIdentity(resolver: Pick<VmResolver, 'resolve'>, vm: string): string {
  try {
    return resolver.resolve('vm', vm);
  } catch (e) {
    if (e instanceof InvalidArgumentError) return vm;
    throw e;
  }
}

export class PlacementMonitor implements VmResolver {
  private readonly state = new PlacementState();
  private conflicts = '';
  private coordinator: Pick<Coordinator, 'migrationStarted' | 'migrationEnded'> | undefined;
  private readonly changeListeners: ((vms: PlacedVm[]) => void)[] = [];

  constructor(
    private readonly source: PlacementSource | undefined,
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  get sourceKind(): string {
    return this.source?.kind ?? '';
  }

  /** Reads the placement once, so that names resolve from the first call on. @throws when the source cannot be read */
  async start(): Promise<void> {
    const source = this.source;
    if (!source) return;
    try {
      await source.start((e) => this.onEvent(e));
    } catch (e) {
      const detail = ((e as Error).message ?? String(e)).trim();
      throw new Error(`cannot read this host's placement (coordinator.yaml placement.${source.kind}): ${detail}`, {
        cause: e,
      });
    }
  }

  /** From here on, migrations reach the coordinator's rules (it needs this monitor to resolve names first). */
  attach(coordinator: Pick<Coordinator, 'migrationStarted' | 'migrationEnded'>): void {
    this.coordinator = coordinator;
  }

  /** Called with the VMs after each event of the source (a cluster member publishes them: cluster/host-placements.ts). */
  onChange(listener: (vms: PlacedVm[]) => void): void {
    this.changeListeners.push(listener);
  }

  async stop(): Promise<void> {
    await this.source?.stop();
  }

  resolve(field: string, given: string): string {
    return this.state.aliases().resolve(field, given);
  }

  identityOf(vm: string): string {
    return configuredIdentity(this, vm);
  }

  nameOf(identity: string): string | undefined {
    return this.state.aliases().nameOf(identity);
  }

  vms(): PlacedVm[] {
    return this.state.all();
  }

  /** A host's placement as known here: this host's only (another host's is its own coordinator's to say). */
  placementOf(host: string): { kind: string; vms: PlacedVm[] } | undefined {
    return host === this.host ? { kind: this.sourceKind, vms: this.vms() } : undefined;
  }

  /** Feeds one event; the sources call this, and tests with a source of their own. */
  onEvent(event: PlacementEvent): void {
    const changes = this.state.apply(event);
    this.reportConflicts(this.state.aliases().conflicts());
    for (const change of changes) this.tell(change);
    for (const listener of this.changeListeners) listener(this.vms());
  }

  private tell(change: PlacementChange): void {
    const { uuid, name } = change.vm;
    this.log.info(change.type === 'migration-started' ? 'VM migration started' : 'VM migration ended', {
      vm: name,
      uuid,
      direction: change.direction,
      ...(change.type === 'migration-ended' ? { outcome: change.outcome } : {}),
    });
    const done =
      change.type === 'migration-started'
        ? this.coordinator?.migrationStarted(this.host, uuid, name, change.direction)
        : this.coordinator?.migrationEnded(this.host, uuid, name, change.direction, change.outcome);
    done?.catch((e) => this.log.warn('could not record a VM migration', { vm: name, error: e as Error }));
  }

  /** Said once per new set of conflicts, not on every event. */
  private reportConflicts(conflicts: AliasConflict[]): void {
    const key = JSON.stringify(conflicts);
    if (key === this.conflicts) return;
    this.conflicts = key;
    for (const c of conflicts)
      this.log.warn('a VM name names more than one VM: give the UUID instead', {
        name: c.alias,
        uuids: c.uuids.join(', '),
      });
  }
}

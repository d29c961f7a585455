/**
 * Each member's placement (which VMs run on its host, and their migrations), on its way to the leader, as
 * host-loads.ts carries host loads: every member runs its own host's placement source and publishes, tied to
 * its registration lease, `placement/<host>` (the source's kind and its VMs) and `migration/<host>/<uuid>`
 * (a migration under way, then its outcome). The leader follows those keys: it resolves VM names with every
 * host's VMs, and hands migrations to its coordinator, deleting an ended one once applied so that a new
 * leader applies only the ends the old one had not.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { MigrationDirection, PlacedVm } from '../domain/placement/types';
import { AliasTable } from '../domain/vm-identity';
import type { Coordinator } from '../service/coordinator';
import { configuredIdentity } from '../service/placement-monitor';
import type { Registration } from './cluster-view';

type Migrations = Pick<Coordinator, 'ensureHost' | 'migrationStarted' | 'migrationEnded'>;

interface PublishedPlacement {
  kind: string;
  vms: PlacedVm[];
}

interface PublishedMigration {
  name: string;
  direction: MigrationDirection;
  /** Set once it ended. */
  outcome?: 'arrived' | 'left' | 'failed';
}

const placementPrefix = (prefix: string) => `${prefix}placement/`;
const migrationPrefix = (prefix: string) => `${prefix}migration/`;

/**
 * The member side: where its PlacementMonitor's VM list (`placed`) and migrations (`migrations`, what the
 * monitor is attached to instead of a coordinator) go. A failed put is logged: the next change puts again.
 */
export function publishPlacement(
  registration: Pick<Registration, 'put' | 'onRegistered'>,
  prefix: string,
  host: string,
  log: Logger,
): {
  placed(kind: string, vms: PlacedVm[]): void;
  migrations: Pick<Coordinator, 'migrationStarted' | 'migrationEnded'>;
} {
  // What was put last under each key, to put again when the member registers with a new lease.
  const last = new Map<string, string>();
  const put = (key: string, value: string) => {
    last.set(key, value);
    return registration.put(key, value).catch((error: Error) => {
      log.warn("cannot publish this host's placement to the cluster", { key, error });
    });
  };
  registration.onRegistered(() => {
    for (const [key, value] of last) void put(key, value);
  });
  const migration = (vm: string, m: PublishedMigration) =>
    put(`${migrationPrefix(prefix)}${host}/${vm}`, JSON.stringify(m));
  return {
    placed: (kind, vms) =>
      void put(`${placementPrefix(prefix)}${host}`, JSON.stringify({ kind, vms } satisfies PublishedPlacement)),
    migrations: {
      migrationStarted: (_host, vm, name, direction) => migration(vm, { name, direction }),
      migrationEnded: (_host, vm, name, direction, outcome) => migration(vm, { name, direction, outcome }),
    },
  };
}

/**
 * The leader side, in place of a PlacementMonitor (server.ts): every host's VMs, as their members published
 * them. Names resolve over all of them, so a VM named on any host, or migrated to another, is one identity.
 */
export class ClusterPlacement {
  private readonly hosts = new Map<string, PublishedPlacement>();
  private table = new AliasTable();
  private coordinator: Migrations | undefined;
  private pending: IKeyValue[] = [];
  private readonly watchers: Watcher[] = [];
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    /** The leader's own host: its VMs are those `vms()` lists (its metrics are its own host's). */
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  get sourceKind(): string {
    return this.hosts.get(this.host)?.kind ?? '';
  }

  /** Reads every host's placement and pending migrations, then follows them. @throws when etcd cannot be read */
  async start(): Promise<void> {
    const [placements, migrations] = await Promise.all([
      this.client.getAll().prefix(placementPrefix(this.prefix)).exec(),
      this.client.getAll().prefix(migrationPrefix(this.prefix)).exec(),
    ]);
    for (const kv of placements.kvs) this.placed(kv.key.toString(), kv.value.toString());
    this.pending = migrations.kvs;
    await Promise.all([
      this.follow(placementPrefix(this.prefix), placements.header.revision, (kv, deleted) =>
        this.placed(kv.key.toString(), deleted ? undefined : kv.value.toString()),
      ),
      this.follow(migrationPrefix(this.prefix), migrations.header.revision, (kv, deleted) => {
        if (!deleted) this.migration(kv);
      }),
    ]);
  }

  /** From here on, migrations reach the coordinator, the ones read at start first. */
  attach(coordinator: Migrations): void {
    this.coordinator = coordinator;
    const pending = this.pending;
    this.pending = [];
    for (const kv of pending) this.migration(kv);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.watchers.map((w) => w.cancel().catch(() => undefined)));
  }

  resolve(field: string, given: string): string {
    return this.table.resolve(field, given);
  }

  identityOf(vm: string): string {
    return configuredIdentity(this, vm);
  }

  nameOf(identity: string): string | undefined {
    return this.table.nameOf(identity);
  }

  vms(): PlacedVm[] {
    return this.placementOf(this.host)?.vms ?? [];
  }

  /** A host's placement as its member published it; undefined for a host without a member or a source. */
  placementOf(host: string): { kind: string; vms: PlacedVm[] } | undefined {
    const p = this.hosts.get(host);
    return p && { kind: p.kind, vms: [...p.vms] };
  }

  private async follow(
    prefix: string,
    revision: string,
    handle: (kv: IKeyValue, deleted: boolean) => void,
  ): Promise<void> {
    // From the revision read, so that nothing put between the read and the watch is missed.
    const watcher = await this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(BigInt(revision) + 1n))
      .create();
    if (this.stopped) return void watcher.cancel();
    this.watchers.push(watcher);
    watcher.on('put', (kv) => handle(kv, false));
    watcher.on('delete', (kv) => handle(kv, true));
    watcher.on('error', (error) => this.log.warn("cannot follow the members' placement", { error }));
  }

  private placed(key: string, value: string | undefined): void {
    const host = key.slice(placementPrefix(this.prefix).length);
    if (value === undefined) this.hosts.delete(host);
    else this.hosts.set(host, JSON.parse(value) as PublishedPlacement);
    // A VM seen on two hosts while it migrates is one UUID: the table names it once.
    this.table = new AliasTable([...this.hosts.values()].flatMap((p) => p.vms));
  }

  private migration(kv: IKeyValue): void {
    const coordinator = this.coordinator;
    if (!coordinator) return void this.pending.push(kv);
    const key = kv.key.toString();
    const [host, vm] = key.slice(migrationPrefix(this.prefix).length).split('/');
    const m = JSON.parse(kv.value.toString()) as PublishedMigration;
    const { outcome } = m;
    coordinator
      .ensureHost(host)
      .then(async () => {
        if (outcome === undefined) return coordinator.migrationStarted(host, vm, m.name, m.direction);
        await coordinator.migrationEnded(host, vm, m.name, m.direction, outcome);
        // Applied: gone, unless the member put a newer migration of this VM meanwhile.
        await this.client.if(key, 'Mod', '==', kv.mod_revision).then(this.client.delete().key(key)).commit();
      })
      .catch((error: Error) => this.log.warn('could not record a VM migration', { host, vm: m.name, error }));
  }
}

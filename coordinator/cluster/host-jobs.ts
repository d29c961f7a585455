/**
 * Each member's hypervisor jobs (coordinator.yaml's `hypervisorJobs`), on their way to the leader's planner:
 * every member publishes its own host's under `hypervisor-jobs/<host>`, tied to its registration lease (a
 * member that dies takes its host's schedule with it), and the leader follows those keys, so that its plan
 * keeper plans every host's hypervisor runs as it plans its own host's on a single host. The member runs them
 * itself (its scheduler and backup runner, member.ts); the leader only plans them and answers for them.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { HypervisorJob } from '../hypervisor-jobs/hypervisor-schedule';
import type { DeclaredJob } from '../planning/plan-view';
import type { Registration } from './cluster-view';
import { followPrefix, keepPublished } from './member-keys';

/** A job as the leader plans it: what planning reads, and whether its member runs it (it has a driver). */
export interface PublishedJob extends DeclaredJob {
  vms: readonly string[];
  runs: boolean;
}

const jobsPrefix = (prefix: string) => `${prefix}hypervisor-jobs/`;

/** The member side: puts its host's jobs once, and again whenever it registers anew. */
export function publishHypervisorJobs(
  registration: Pick<Registration, 'put' | 'onRegistered'>,
  prefix: string,
  host: string,
  jobs: readonly HypervisorJob[],
  log: Logger,
): { stop(): void } {
  const published = keepPublished(registration, "this host's hypervisor jobs", log);
  const value: PublishedJob[] = jobs.map(({ driver, ...job }) => ({ ...job, runs: driver !== undefined }));
  void published.publish(`${jobsPrefix(prefix)}${host}`, JSON.stringify(value));
  return published;
}

/** The leader side: every member's jobs, as published, followed from `start()` on. */
export class ClusterHypervisorJobs {
  private readonly byHost = new Map<string, readonly PublishedJob[]>();
  private readonly listeners: ((host: string) => void)[] = [];
  private unfollow: (() => Promise<void>) | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  /** @throws when etcd cannot be read */
  async start(): Promise<void> {
    this.unfollow = await followPrefix(
      this.client,
      jobsPrefix(this.prefix),
      (host, value) => {
        if (value === undefined) this.byHost.delete(host);
        else this.byHost.set(host, JSON.parse(value) as PublishedJob[]);
        for (const l of this.listeners) l(host);
      },
      "the members' hypervisor jobs",
      this.log,
    );
  }

  async stop(): Promise<void> {
    await this.unfollow?.();
  }

  /** A host's jobs; none for a host without a member. */
  of(host: string): readonly PublishedJob[] {
    return this.byHost.get(host) ?? [];
  }

  /** The hosts whose members published jobs. */
  hosts(): string[] {
    return [...this.byHost.keys()];
  }

  /** Called with a host whose jobs were published, changed or went with its member. */
  onChange(listener: (host: string) => void): void {
    this.listeners.push(listener);
  }

  /** The host whose member runs `vm` (an identity) with a job's driver; `resolve` names a job's VMs' identities. */
  hostRunning(vm: string, resolve: (vm: string) => string): string | undefined {
    for (const [host, jobs] of [...this.byHost].sort(([a], [b]) => a.localeCompare(b))) {
      if (jobs.some((j) => j.runs && j.vms.some((v) => resolve(v) === vm))) return host;
    }
    return undefined;
  }
}

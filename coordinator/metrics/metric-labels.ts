/**
 * The labels a run's series carry, bounded: VMs by their placement name where known, VMs and jobs capped
 * (label-cap.ts). Shared by the event counters and the state gauges, so that both name a run alike.
 */
import type { Lease, TokenKind } from '../domain/lease';
import { LabelCap } from './label-cap';

/** At most this many distinct VMs and jobs get series of their own; the rest is `other`. */
export const MAX_VMS = 2_000;
export const MAX_JOBS = 200;

export const kindLabel = (kind: TokenKind | '') => kind.toLowerCase();

export class MetricLabels {
  private readonly vms = new LabelCap(MAX_VMS);
  private readonly jobs = new LabelCap(MAX_JOBS);

  constructor(private readonly nameOf: (identity: string) => string | undefined) {}

  /** A VM known by its identity (a lease's, an agent's). */
  vm(identity: string): string {
    return this.vms.of(this.nameOf(identity) ?? identity);
  }

  /** A VM known by its name already (placement's). */
  vmName(name: string): string {
    return this.vms.of(name);
  }

  run(host: string, kind: TokenKind, vm: string, job: string) {
    return { host, kind: kindLabel(kind), vm: this.vm(vm), backup_job: this.jobs.of(job) };
  }

  lease(lease: Lease) {
    return this.run(lease.host, lease.kind, lease.vm, lease.job);
  }
}

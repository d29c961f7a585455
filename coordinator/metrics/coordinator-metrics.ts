/**
 * The coordinator's Prometheus metrics (docs/observability.md lists each with its labels). Counters and
 * histograms are fed from the committed lessor events, the same ones the history records: one cheap
 * increment per event, in the commit listener. Everything that is a state — active tokens, queues, budgets,
 * load, placement, the plan's left-out runs — is read from the registry and the lessor only when Prometheus
 * scrapes, so a busy coordinator does no metrics work between scrapes.
 *
 * Labels are host, kind, vm, backup_job, reason, outcome (and state/direction/source where said): VMs and
 * jobs are capped (label-cap.ts) and reasons come from closed sets, so the number of series stays bounded.
 * The job's label is backup_job, not job: Prometheus gives `job` to the scrape job, and would rename ours.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LessorEvent } from '../domain/events';
import type { Lease } from '../domain/lease';
import { LabelCap } from './label-cap';
import { MetricLabels, kindLabel } from './metric-labels';
import type { MetricsSources } from './sources';
import { type Frozen, registerStateGauges } from './state-gauges';

export { MAX_VMS } from './metric-labels';

/** At most this many distinct free-text revocation reasons get series of their own; the rest is `other`. */
export const MAX_REASONS = 20;

const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

const seconds = (ms: number) => ms / 1000;

/** Wait for a token: from an immediate grant up to a night's window. */
const WAIT_BUCKETS = [0.1, 1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800];
/** A backup run: from a small incremental to a large full one. */
const DURATION_BUCKETS = [10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 57600];
/** A guest frozen for a snapshot: seconds at most when things go well. */
const FROZEN_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300];

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly label: MetricLabels;
  private readonly revokeReasons = new LabelCap(MAX_REASONS);
  /** Guests frozen now (quiesced under a HYPERVISOR token, or by the hypervisor's tools), with since when. */
  private readonly frozen = new Map<string, Frozen>();
  private readonly unsubscribe: () => void;

  private readonly grants: Counter;
  private readonly denials: Counter;
  private readonly revocations: Counter;
  private readonly expiries: Counter;
  private readonly runs: Counter;
  private readonly written: Counter;
  private readonly quiesces: Counter;
  private readonly chainBreaks: Counter;
  private readonly waits: Histogram;
  private readonly durations: Histogram;
  private readonly frozenFor: Histogram;
  private readonly lastSuccess: Gauge;

  constructor(private readonly sources: MetricsSources) {
    this.label = new MetricLabels((identity) => sources.placement.nameOf(identity));
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters, which `promtool check metrics` refuses; the process_* metrics stay.
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    const counter = (name: string, help: string, labelNames: string[]) =>
      new Counter({ name, help, labelNames, registers });
    this.grants = counter(
      'headroom_grants_total',
      'Tokens granted; reason forced: started on a reduced budget despite the load.',
      ['host', 'kind', 'reason'],
    );
    this.denials = counter('headroom_denials_total', 'Token requests denied, by reason.', ['host', 'kind', 'reason']);
    this.revocations = counter('headroom_revocations_total', 'Tokens revoked, by reason.', ['host', 'kind', 'reason']);
    this.expiries = counter('headroom_expiries_total', 'Tokens that expired because their holder stopped renewing.', [
      'host',
      'kind',
      'reason',
    ]);
    this.runs = counter(
      'headroom_backup_runs_total',
      'Backup runs that ended: success or failure as their holder said, or expired, revoked.',
      ['host', 'kind', 'vm', 'backup_job', 'outcome'],
    );
    this.written = counter(
      'headroom_backup_written_bytes_total',
      'Bytes written to storage by backup runs, as their holders measured them.',
      ['host', 'kind', 'vm', 'backup_job'],
    );
    this.quiesces = counter(
      'headroom_quiesce_total',
      "Guest quiesces under hypervisor backups: quiesced, failed, thawed, auto_thawed (by the agent's own bound).",
      ['host', 'vm', 'outcome'],
    );
    this.chainBreaks = counter(
      'headroom_backup_chain_breaks_total',
      "Full hypervisor backups taken because the VM's incremental chain broke, by the catalog's reason code.",
      ['host', 'vm', 'reason'],
    );
    const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
      new Histogram({ name, help, labelNames, buckets, registers });
    this.waits = histogram(
      'headroom_token_wait_seconds',
      'Time from a token request to its grant.',
      ['host', 'kind'],
      WAIT_BUCKETS,
    );
    this.durations = histogram(
      'headroom_backup_duration_seconds',
      'Duration of backup runs that ended successfully, as their holders measured them.',
      ['host', 'kind', 'vm', 'backup_job'],
      DURATION_BUCKETS,
    );
    this.frozenFor = histogram(
      'headroom_guest_frozen_seconds',
      'How long guests stayed frozen for a hypervisor snapshot.',
      ['host'],
      FROZEN_BUCKETS,
    );
    this.lastSuccess = new Gauge({
      name: 'headroom_backup_last_success_timestamp_seconds',
      help: 'When the last successful backup run of a VM and job ended, Unix seconds.',
      labelNames: ['host', 'kind', 'vm', 'backup_job'],
      registers,
    });
    for (const s of sources.lastSuccesses)
      this.lastSuccess.set(this.label.run(s.host, s.kind, s.vm, s.job), seconds(s.endedAt));
    registerStateGauges(this.registry, sources, this.label, this.frozen);
    this.unsubscribe = sources.coordinator.onCommitted((events) => {
      for (const e of events) this.count(e);
    });
  }

  /** The exposition text, and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    this.unsubscribe();
    this.registry.clear();
  }

  private count(e: LessorEvent): void {
    switch (e.type) {
      case 'granted': {
        const labels = { host: e.lease.host, kind: kindLabel(e.lease.kind) };
        this.grants.inc({ ...labels, reason: e.forced ? 'forced' : 'admitted' });
        if (e.queuedAt !== undefined) this.waits.observe(labels, seconds(Math.max(0, e.at - e.queuedAt)));
        return;
      }
      case 'denied':
        this.denials.inc({ host: e.request.host, kind: kindLabel(e.request.kind), reason: e.reason.toLowerCase() });
        return;
      case 'revoked':
        this.revocations.inc({
          host: e.lease.host,
          kind: kindLabel(e.lease.kind),
          reason: this.revokeReasons.of(e.reason),
        });
        this.runs.inc({ ...this.label.lease(e.lease), outcome: 'revoked' });
        return;
      case 'expired':
        this.expiries.inc({ host: e.lease.host, kind: kindLabel(e.lease.kind), reason: 'not_renewed' });
        this.runs.inc({ ...this.label.lease(e.lease), outcome: 'expired' });
        return;
      case 'released': {
        const labels = this.label.lease(e.lease);
        this.runs.inc({ ...labels, outcome: e.outcome.success ? 'success' : 'failure' });
        if (e.outcome.bytes !== undefined) this.written.inc(labels, e.outcome.bytes);
        if (!e.outcome.success) return;
        this.durations.observe(labels, seconds(e.outcome.durationMs));
        this.lastSuccess.set(labels, seconds(e.at));
        if (e.lease.kind === 'HYPERVISOR') this.countChainBreaks(e.lease);
        return;
      }
      case 'quiesced':
        this.quiesces.inc({ host: e.lease.host, vm: this.label.vm(e.lease.vm), outcome: 'quiesced' });
        this.frozen.set(`guest:${e.lease.host}:${e.lease.vm}`, {
          host: e.lease.host,
          vm: e.lease.vm,
          source: 'quiesce',
          since: e.at,
        });
        return;
      case 'quiesce-failed':
        this.quiesces.inc({ host: e.lease.host, vm: this.label.vm(e.lease.vm), outcome: 'failed' });
        return;
      case 'thawed':
        this.quiesces.inc({
          host: e.lease.host,
          vm: this.label.vm(e.lease.vm),
          outcome: e.autoThawed ? 'auto_thawed' : 'thawed',
        });
        this.frozenFor.observe({ host: e.lease.host }, seconds(e.frozenMs));
        this.frozen.delete(`guest:${e.lease.host}:${e.lease.vm}`);
        return;
      case 'vm-frozen':
        this.frozen.set(`hypervisor:${e.host}:${e.vm}`, { host: e.host, vm: e.vm, source: e.source, since: e.at });
        return;
      case 'vm-thawed':
        this.frozenFor.observe({ host: e.host }, seconds(e.at - e.since));
        this.frozen.delete(`hypervisor:${e.host}:${e.vm}`);
        return;
      default:
        return;
    }
  }

  /** After the commit listener returns: reading manifests is file I/O, kept out of the commit's turn. */
  private countChainBreaks(lease: Lease): void {
    const read = this.sources.chainBreaks;
    if (!read) return;
    setImmediate(() => {
      const names = [lease.vm, this.sources.placement.nameOf(lease.vm) ?? lease.vm];
      for (const reason of read(names, lease.grantedAt))
        this.chainBreaks.inc({ host: lease.host, vm: this.label.vm(lease.vm), reason });
    });
  }
}

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
import type { Lease, TokenKind } from '../domain/lease';
import type { PlacedVm } from '../domain/placement/types';
import type { PlanView } from '../planning/plan-view';
import type { AgentState } from '../service/agent-registry';
import type { Coordinator } from '../service/coordinator';
import type { LastSuccess } from '../store/store';
import type { ChainBreaks } from './chain-breaks';
import { LabelCap } from './label-cap';

/** At most this many distinct VMs, jobs, and free-text reasons get series of their own; the rest is `other`. */
export const MAX_VMS = 2_000;
export const MAX_JOBS = 200;
export const MAX_REASONS = 20;

const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

export interface MetricsSources {
  coordinator: Pick<Coordinator, 'state' | 'onCommitted' | 'storeFailure'>;
  agents: { list(host?: string): AgentState[] };
  plans: { current(host: string): PlanView | undefined };
  placement: { vms(): PlacedVm[]; nameOf(identity: string): string | undefined };
  /** This coordinator's host: the one placement speaks of. */
  host: string;
  /** The chain breaks of a VM's hypervisor run, from the backup catalogs (chain-breaks.ts). Default none. */
  chainBreaks?: ChainBreaks;
  /** The newest successful run of each VM and job, from the store, so the timestamp survives restarts. */
  lastSuccesses: readonly LastSuccess[];
}

const kindLabel = (kind: TokenKind | '') => kind.toLowerCase();
const seconds = (ms: number) => ms / 1000;

/** Wait for a token: from an immediate grant up to a night's window. */
const WAIT_BUCKETS = [0.1, 1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800];
/** A backup run: from a small incremental to a large full one. */
const DURATION_BUCKETS = [10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 57600];
/** A guest frozen for a snapshot: seconds at most when things go well. */
const FROZEN_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300];

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly vms = new LabelCap(MAX_VMS);
  private readonly jobs = new LabelCap(MAX_JOBS);
  private readonly revokeReasons = new LabelCap(MAX_REASONS);
  /** Guests frozen now (quiesced under a HYPERVISOR token, or by the hypervisor's tools), with since when. */
  private readonly frozen = new Map<string, { host: string; vm: string; source: string; since: number }>();
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
    this.waits = new Histogram({
      name: 'headroom_token_wait_seconds',
      help: 'Time from a token request to its grant.',
      labelNames: ['host', 'kind'],
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.durations = new Histogram({
      name: 'headroom_backup_duration_seconds',
      help: 'Duration of backup runs that ended successfully, as their holders measured them.',
      labelNames: ['host', 'kind', 'vm', 'backup_job'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.frozenFor = new Histogram({
      name: 'headroom_guest_frozen_seconds',
      help: 'How long guests stayed frozen for a hypervisor snapshot.',
      labelNames: ['host'],
      buckets: FROZEN_BUCKETS,
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'headroom_backup_last_success_timestamp_seconds',
      help: 'When the last successful backup run of a VM and job ended, Unix seconds.',
      labelNames: ['host', 'kind', 'vm', 'backup_job'],
      registers,
    });
    for (const s of sources.lastSuccesses)
      this.lastSuccess.set(this.runLabels(s.host, s.kind, s.vm, s.job), seconds(s.endedAt));
    this.stateGauges(registers);
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

  private vmLabel(vm: string): string {
    return this.vms.of(this.sources.placement.nameOf(vm) ?? vm);
  }

  private runLabels(host: string, kind: TokenKind, vm: string, job: string) {
    return { host, kind: kindLabel(kind), vm: this.vmLabel(vm), backup_job: this.jobs.of(job) };
  }

  private leaseLabels(lease: Lease) {
    return this.runLabels(lease.host, lease.kind, lease.vm, lease.job);
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
        this.runs.inc({ ...this.leaseLabels(e.lease), outcome: 'revoked' });
        return;
      case 'expired':
        this.expiries.inc({ host: e.lease.host, kind: kindLabel(e.lease.kind), reason: 'not_renewed' });
        this.runs.inc({ ...this.leaseLabels(e.lease), outcome: 'expired' });
        return;
      case 'released': {
        const labels = this.leaseLabels(e.lease);
        this.runs.inc({ ...labels, outcome: e.outcome.success ? 'success' : 'failure' });
        if (e.outcome.bytes !== undefined) this.written.inc(labels, e.outcome.bytes);
        if (!e.outcome.success) return;
        this.durations.observe(labels, seconds(e.outcome.durationMs));
        this.lastSuccess.set(labels, seconds(e.at));
        if (e.lease.kind === 'HYPERVISOR') this.countChainBreaks(e.lease);
        return;
      }
      case 'quiesced':
        this.quiesces.inc({ host: e.lease.host, vm: this.vmLabel(e.lease.vm), outcome: 'quiesced' });
        this.frozen.set(`guest:${e.lease.host}:${e.lease.vm}`, {
          host: e.lease.host,
          vm: e.lease.vm,
          source: 'quiesce',
          since: e.at,
        });
        return;
      case 'quiesce-failed':
        this.quiesces.inc({ host: e.lease.host, vm: this.vmLabel(e.lease.vm), outcome: 'failed' });
        return;
      case 'thawed':
        this.quiesces.inc({
          host: e.lease.host,
          vm: this.vmLabel(e.lease.vm),
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
        this.chainBreaks.inc({ host: lease.host, vm: this.vmLabel(lease.vm), reason });
    });
  }

  /** The gauges of state, each filled in when Prometheus scrapes. */
  private stateGauges(registers: Registry[]): void {
    const { coordinator, agents, plans, placement, host: ownHost } = this.sources;
    // Arrow functions: a gauge's collect() runs with the gauge as `this`.
    const label = {
      lease: (lease: Lease) => this.leaseLabels(lease),
      run: (host: string, kind: TokenKind, vm: string, job: string) => this.runLabels(host, kind, vm, job),
      vm: (vm: string) => this.vmLabel(vm),
      vmName: (name: string) => this.vms.of(name),
    };
    const frozen = this.frozen;
    const gauge = (
      name: string,
      help: string,
      labelNames: string[],
      fill: (set: (labels: Record<string, string>, value: number) => void) => void,
    ) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill((labels, value) => this.set(labels, value));
        },
      });
    const hosts = () => coordinator.state.hostNames();
    gauge(
      'headroom_store_writable',
      '1 while the database commits, 0 while it cannot (disk full, read-only): grants are refused then.',
      [],
      (set) => set({}, coordinator.storeFailure === undefined ? 1 : 0),
    );
    gauge('headroom_tokens_active', 'Tokens held now.', ['host', 'kind'], (set) => {
      for (const host of hosts()) {
        const view = coordinator.state.host(host);
        set({ host, kind: 'guest' }, view.activeGuest);
        set({ host, kind: 'hypervisor' }, view.activeHypervisor);
      }
    });
    gauge('headroom_queue_length', 'Token requests waiting.', ['host', 'kind'], (set) => {
      for (const host of hosts()) {
        const counts = { guest: 0, hypervisor: 0 };
        for (const w of coordinator.state.waiting(host)) counts[w.request.kind === 'GUEST' ? 'guest' : 'hypervisor']++;
        for (const [kind, n] of Object.entries(counts)) set({ host, kind }, n);
      }
    });
    gauge('headroom_host_paused', '1 while an administrator paused the host: no token is granted.', ['host'], (set) => {
      for (const host of hosts()) set({ host }, coordinator.state.host(host).paused ? 1 : 0);
    });
    const budgets =
      (field: 'cpuPercent' | 'ioBytesPerSec') => (set: (labels: Record<string, string>, value: number) => void) => {
        const reported = new Map(
          agents.list().flatMap((a) => [...a.budgets.values()].map((b) => [b.tokenId, b] as const)),
        );
        for (const lease of coordinator.state.activeLeases()) {
          const budget = reported.get(lease.tokenId)?.budget ?? lease.budget;
          set(label.lease(lease), Number(budget[field] ?? 0));
        }
      };
    gauge(
      'headroom_backup_budget_cpu_percent',
      'CPU budget in force on a running backup (0: unlimited), as its agent reports it, else as granted.',
      ['host', 'kind', 'vm', 'backup_job'],
      budgets('cpuPercent'),
    );
    gauge(
      'headroom_backup_budget_io_bytes_per_second',
      'I/O budget in force on a running backup (0: unlimited), as its agent reports it, else as granted.',
      ['host', 'kind', 'vm', 'backup_job'],
      budgets('ioBytesPerSec'),
    );
    gauge(
      'headroom_backup_paused',
      '1 while a running backup is paused by the load controller, as its agent reports.',
      ['host', 'kind', 'vm', 'backup_job'],
      (set) => {
        const paused = new Set(
          agents.list().flatMap((a) => [...a.budgets.values()].filter((b) => b.paused).map((b) => b.tokenId)),
        );
        for (const lease of coordinator.state.activeLeases())
          set(label.lease(lease), paused.has(lease.tokenId) ? 1 : 0);
      },
    );
    const load = (cpu: boolean) => (set: (labels: Record<string, string>, value: number) => void) => {
      for (const a of agents.list()) {
        const r = a.lastLoad;
        if (!a.connected || !r) continue;
        // The VM's own work: what its backups used is taken out.
        const value = cpu
          ? Number(r.cpuPercent ?? 0) - Number(r.backupCpuPercent ?? 0)
          : Number(r.diskReadBytesPerSec ?? 0) +
            Number(r.diskWriteBytesPerSec ?? 0) -
            Number(r.backupIoBytesPerSec ?? 0);
        set({ host: a.record.host, vm: label.vm(a.record.vm) }, Math.max(0, value));
      }
    };
    gauge(
      'headroom_vm_cpu_percent',
      "A VM's foreground CPU use (its backups' share taken out), from its agent's last report.",
      ['host', 'vm'],
      load(true),
    );
    gauge(
      'headroom_vm_io_bytes_per_second',
      "A VM's foreground disk I/O (its backups' share taken out), from its agent's last report.",
      ['host', 'vm'],
      load(false),
    );
    gauge('headroom_agents_connected', 'Agents with a session open now.', ['host'], (set) => {
      for (const host of hosts()) set({ host }, agents.list(host).filter((a) => a.connected).length);
    });
    gauge(
      'headroom_plan_left_out_runs',
      "Runs the current plan left out (1 each), with the planner's reason in the history and headroomctl plan.",
      ['host', 'kind', 'vm', 'backup_job'],
      (set) => {
        for (const host of hosts()) {
          for (const u of plans.current(host)?.unplaced ?? []) {
            const labels = label.run(host, u.kind, u.vm, u.job);
            set(labels, 1);
          }
        }
      },
    );
    gauge(
      'headroom_guest_frozen_since_timestamp_seconds',
      'Guests frozen now, since when (Unix seconds); source quiesce: by its agent under a hypervisor backup.',
      ['host', 'vm', 'source'],
      (set) => {
        for (const f of frozen.values()) set({ host: f.host, vm: label.vm(f.vm), source: f.source }, seconds(f.since));
      },
    );
    gauge('headroom_placement_vms', 'VMs placement sees on this host, by run state.', ['host', 'state'], (set) => {
      const counts = new Map<string, number>();
      for (const vm of placement.vms()) counts.set(vm.state, (counts.get(vm.state) ?? 0) + 1);
      for (const [state, n] of counts) set({ host: ownHost, state }, n);
    });
    gauge(
      'headroom_vm_migrating',
      '1 for each VM migrating to (in) or from (out) this host now.',
      ['host', 'vm', 'direction'],
      (set) => {
        for (const vm of placement.vms())
          if (vm.migrating) set({ host: ownHost, vm: label.vmName(vm.name), direction: vm.migrating }, 1);
      },
    );
  }
}

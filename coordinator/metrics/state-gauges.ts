/**
 * The gauges of state, each filled in when Prometheus scrapes: from the lessor, the agent registry, the
 * plan keeper and placement, never from events, so that nothing is done for them between scrapes.
 */
import { Gauge, type Registry } from 'prom-client';
import type { TargetView } from '../domain/targets';
import type { MetricLabels } from './metric-labels';
import type { MetricsSources } from './sources';

/** A guest frozen now: quiesced under a HYPERVISOR token, or by the hypervisor's own tools. */
export interface Frozen {
  host: string;
  vm: string;
  source: string;
  since: number;
}

type Fill = (set: (labels: Record<string, string>, value: number) => void) => void;

const seconds = (ms: number) => ms / 1000;

export function registerStateGauges(
  registry: Registry,
  sources: MetricsSources,
  label: MetricLabels,
  frozen: ReadonlyMap<string, Frozen>,
): void {
  const { coordinator, agents, plans, placement, host: ownHost } = sources;
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: string[], fill: Fill) =>
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
  // One series per target of coordinator.yaml's targets: as bounded as the configuration.
  const targets =
    (fill: (t: TargetView) => number | undefined): Fill =>
    (set) => {
      for (const t of coordinator.state.targetViews()) {
        const value = fill(t);
        if (value !== undefined) set({ target: t.name }, value);
      }
    };
  gauge(
    'headroom_target_active_tokens',
    'Tokens writing to a shared target now, on every host.',
    ['target'],
    targets((t) => t.active),
  );
  gauge(
    'headroom_target_max_concurrent',
    'The most tokens a shared target takes at once (its maxConcurrent).',
    ['target'],
    targets((t) => t.maxConcurrent),
  );
  gauge(
    'headroom_target_io_bytes_per_second',
    "The sum of the I/O budgets of a shared target's active tokens.",
    ['target'],
    targets((t) => t.ioInUse),
  );
  // Only where a budget is set, so that io_bytes_per_second / io_budget_bytes_per_second divides by no zero.
  gauge(
    'headroom_target_io_budget_bytes_per_second',
    "A shared target's I/O budget (its ioBudget); no series for a target without one.",
    ['target'],
    targets((t) => (t.ioBytesPerSec > 0 ? t.ioBytesPerSec : undefined)),
  );
  gauge(
    'headroom_target_queue_length',
    'Token requests waiting (on any host) that name a shared target, whatever they wait for.',
    ['target'],
    targets((t) => t.queued),
  );
  gauge('headroom_host_paused', '1 while an administrator paused the host: no token is granted.', ['host'], (set) => {
    for (const host of hosts()) set({ host }, coordinator.state.host(host).paused ? 1 : 0);
  });
  const budgets =
    (field: 'cpuPercent' | 'ioBytesPerSec'): Fill =>
    (set) => {
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
      for (const lease of coordinator.state.activeLeases()) set(label.lease(lease), paused.has(lease.tokenId) ? 1 : 0);
    },
  );
  const load =
    (cpu: boolean): Fill =>
    (set) => {
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

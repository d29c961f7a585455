/**
 * The grant benchmark's results: their shape (also written as JSON), the arithmetic that turns the
 * workers' raw samples into figures, and the printed report.
 */
import type { ErrorCount, GcPauses, PhaseSpec, WorkerPhaseResult } from './grant-protocol';
import type { ProbeWindow } from './coordinator-probe';
import type { ProfileSummary } from './cpu-profile';
import type { ResourceWindow } from './proc-stats';

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface DurabilityCheck {
  /** GRANTED updates the clients received in this phase (warm-up and drain included). */
  clientGrants: number;
  /** GRANTED rows in the coordinator's history for this phase's request ids. */
  historyGranted: number;
  /** Tokens a client received that have no GRANTED row: must be 0. */
  receivedNotInHistory: number;
  /** GRANTED rows whose token no client received (e.g. an answer lost to an error). */
  inHistoryNotReceived: number;
  clientReleases: number;
  historyReleased: number;
  /** Tokens still active in the database after the phase drained: should be 0. */
  activeAfter: number;
}

export interface PhaseReport {
  kind: 'open' | 'closed';
  warmupMs: number;
  durationMs: number;
  /** Open loop: the offered rate, cycles/s. */
  targetRatePerSec?: number;
  startedPerSec: number;
  grantsPerSec: number;
  /** Grants in each whole second of the window: the lowest, median and highest second. */
  grantsPerSecMin: number;
  grantsPerSecMedian: number;
  grantsPerSecMax: number;
  acquireMs: Percentiles;
  releaseMs: Percentiles;
  errors: ErrorCount[];
  skippedTicks: number;
  scheduleLagP99Ms: number;
  scheduleLagMaxMs: number;
  clientEventLoopP99Ms: number;
  clientEventLoopMaxMs: number;
  /** All client processes together. */
  clientGcPauses: GcPauses;
  unfinished: number;
  coordinator: ResourceWindow;
  clientProcessesCpuPercent: number;
  machineBusyPercent: number;
  machineIowaitPercent: number;
  otherProcessesCpuPercent: number;
  durability?: DurabilityCheck;
  /** Inside the coordinator during the measured window: store commits and event-loop delay. */
  probe?: ProbeWindow;
  /** The coordinator's CPU profile of the measured window (--cpu-prof). */
  profile?: ProfileSummary;
}

export interface GrantBenchResult {
  startedAt: string;
  machine: { cores: number; cpuModel: string; memGiB: number; kernel: string; node: string; loadAvgBefore: number[] };
  parameters: Record<string, unknown>;
  database: { path: string; filesystem: string };
  connections: { expected: number; procNetTcp: number; ss?: number; coordinatorFds?: number; connectMs: number };
  coordinatorRssBytes: { afterStart: number; withClientsConnected: number; atEnd: number };
  phases: PhaseReport[];
  hosts: { host: string; maxGuestTokens: number; fencing: number }[];
  coordinatorLogErrors: number;
  elapsedMs: number;
}

export function percentiles(valuesUs: number[]): Percentiles {
  const sorted = Float64Array.from(valuesUs).sort();
  const at = (p: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] / 1000;
  return {
    count: sorted.length,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: sorted.length ? sorted[sorted.length - 1] / 1000 : 0,
  };
}

/** Merges the workers' results of one phase into its figures (resources and durability are added by the caller). */
export function mergePhase(
  spec: PhaseSpec,
  totalRate: number,
  results: WorkerPhaseResult[],
): Omit<
  PhaseReport,
  | 'coordinator'
  | 'clientProcessesCpuPercent'
  | 'machineBusyPercent'
  | 'machineIowaitPercent'
  | 'otherProcessesCpuPercent'
> {
  const seconds = spec.durationMs / 1000;
  const wholeSeconds = Math.floor(seconds);
  const perSecond = Array.from({ length: wholeSeconds }, (_, i) =>
    results.reduce((s, r) => s + (r.grantsPerSecond[i] ?? 0), 0),
  ).sort((a, b) => a - b);
  const errors = new Map<string, number>();
  for (const r of results) for (const e of r.errors) errors.set(e.what, (errors.get(e.what) ?? 0) + e.count);
  const sum = (f: (r: WorkerPhaseResult) => number) => results.reduce((s, r) => s + f(r), 0);
  const max = (f: (r: WorkerPhaseResult) => number) => Math.max(0, ...results.map(f));
  return {
    kind: spec.kind,
    warmupMs: spec.warmupMs,
    durationMs: spec.durationMs,
    targetRatePerSec: spec.kind === 'open' ? totalRate : undefined,
    startedPerSec: sum((r) => r.startedInWindow) / seconds,
    grantsPerSec: sum((r) => r.grantsInWindow) / seconds,
    grantsPerSecMin: perSecond[0] ?? 0,
    grantsPerSecMedian: perSecond[Math.floor(perSecond.length / 2)] ?? 0,
    grantsPerSecMax: perSecond.at(-1) ?? 0,
    acquireMs: percentiles(results.flatMap((r) => r.acquireUs)),
    releaseMs: percentiles(results.flatMap((r) => r.releaseUs)),
    errors: [...errors].map(([what, count]) => ({ what, count })),
    skippedTicks: sum((r) => r.skippedTicks),
    scheduleLagP99Ms: max((r) => r.scheduleLagP99Us) / 1000,
    scheduleLagMaxMs: max((r) => r.scheduleLagMaxUs) / 1000,
    clientEventLoopP99Ms: max((r) => r.eventLoopP99Ms),
    clientEventLoopMaxMs: max((r) => r.eventLoopMaxMs),
    clientGcPauses: {
      count: sum((r) => r.gcPauses.count),
      totalMs: sum((r) => r.gcPauses.totalMs),
      maxMs: max((r) => r.gcPauses.maxMs),
    },
    unfinished: sum((r) => r.unfinished),
  };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const ms = (v: number) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
const secs = (v: number) => `${+(v / 1000).toFixed(1)}s`;

const gcText = (g: GcPauses) => `${g.count} / ${ms(g.totalMs)} / ${ms(g.maxMs)} ms`;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatReport(r: GrantBenchResult): string {
  const p = r.parameters as {
    clients: number;
    workers: number;
    hosts: number;
    ratePerSec: number;
    durability: string;
    server: string;
  };
  const isNull = p.server === 'null';
  const out: string[] = [];
  out.push(`Headroom grant benchmark, ${r.startedAt}`);
  out.push(
    `machine      ${r.machine.cores} cores (${r.machine.cpuModel}), ${r.machine.memGiB} GiB, ${r.machine.kernel}, node ${r.machine.node}; load average before the run ${r.machine.loadAvgBefore.join(' ')}`,
  );
  if (isNull) {
    out.push(
      'server       NULL SERVER, not the coordinator: answers GRANTED at once, no store, no lessor, no validation.',
    );
    out.push(
      '             The latency below is the floor the clients, grpc-js and this machine set before any coordinator work.',
    );
  } else {
    out.push(
      `coordinator  one process, durability=${p.durability}${p.durability === 'full' ? ' (fsync per commit; group commit per event-loop turn)' : ''}, log level warn`,
    );
  }
  out.push(`database     ${r.database.path} on ${r.database.filesystem}`);
  if (!isNull)
    out.push(`policy       maxGuestTokens=1000 on every host (--max-guest 1000), so host caps never queue a request`);
  out.push(`clients      ${p.clients} gRPC channels, each its own TCP connection, in ${p.workers} client processes;`);
  out.push(
    `             ${p.hosts} hosts x ${Math.ceil(p.clients / p.hosts)} VMs, one VM per client, GUEST tokens only (no HYPERVISOR,`,
  );
  out.push(
    `             so the GUEST/HYPERVISOR exclusion never serialises anything: this measures the grant path itself)`,
  );
  out.push(`cycle        Acquire (server stream until GRANTED) then Release; latency = call start -> GRANTED received`);
  const c = r.connections;
  const ok = c.procNetTcp === c.expected ? 'as expected' : `EXPECTED ${c.expected}`;
  out.push(
    `connections  ${c.procNetTcp} established to the coordinator's port per /proc/net/tcp${c.ss !== undefined ? `, ${c.ss} per ss -tn` : ''} ` +
      `(${p.clients} clients${isNull ? '' : ' + 1 admin'}: ${ok}); coordinator holds ${c.coordinatorFds ?? '?'} fds; all connected in ${secs(c.connectMs)}`,
  );
  out.push(
    `coord. RSS   ${mib(r.coordinatorRssBytes.afterStart)} at start, ${mib(r.coordinatorRssBytes.withClientsConnected)} with all clients connected, ${mib(r.coordinatorRssBytes.atEnd)} at the end`,
  );
  out.push('');

  const header = [
    '',
    ...r.phases.map((ph) => (ph.kind === 'open' ? `(a) open loop, ${ph.targetRatePerSec}/s` : '(b) closed loop')),
  ];
  const row = (name: string, f: (ph: PhaseReport) => string) => [name, ...r.phases.map(f)];
  const errText = (ph: PhaseReport) =>
    ph.errors.length === 0 ? '0' : ph.errors.map((e) => `${e.count} ${e.what}`).join(', ');
  const phaseRows = [
    row('measured window', (ph) => `${secs(ph.durationMs)} after ${secs(ph.warmupMs)} warm-up`),
    row('cycles started/s', (ph) => ph.startedPerSec.toFixed(1)),
    row('grants/s (window)', (ph) => ph.grantsPerSec.toFixed(1)),
    row(
      'grants/s per second min/med/max',
      (ph) => `${ph.grantsPerSecMin}/${ph.grantsPerSecMedian}/${ph.grantsPerSecMax}`,
    ),
    row('acquire p50/p90 ms', (ph) => `${ms(ph.acquireMs.p50)} / ${ms(ph.acquireMs.p90)}`),
    row('acquire p99/max ms', (ph) => `${ms(ph.acquireMs.p99)} / ${ms(ph.acquireMs.max)}`),
    row('release p50/p99 ms', (ph) => `${ms(ph.releaseMs.p50)} / ${ms(ph.releaseMs.p99)}`),
    row('samples', (ph) => String(ph.acquireMs.count)),
    row('errors', errText),
    row('coordinator CPU (% of a core)', (ph) => `${ph.coordinator.cpuPercent.toFixed(0)}%`),
    row(
      'coordinator RSS peak / end (after GC)',
      (ph) => `${mib(ph.coordinator.rssPeakBytes)} / ${mib(ph.coordinator.rssEndBytes)}`,
    ),
    row('coord. store commits/s', (ph) => (ph.probe ? (ph.probe.commits / (ph.probe.wallMs / 1000)).toFixed(0) : '?')),
    row('coord. commit p50/p99/max ms', (ph) =>
      ph.probe ? `${ms(ph.probe.commitMs.p50)} / ${ms(ph.probe.commitMs.p99)} / ${ms(ph.probe.commitMs.max)}` : '?',
    ),
    row('coord. loop blocked in commits', (ph) =>
      ph.probe ? `${((100 * ph.probe.commitTotalMs) / ph.probe.wallMs).toFixed(0)}% of wall time` : '?',
    ),
    row('coord. events/commit mean/max', (ph) =>
      ph.probe ? `${ph.probe.eventsPerCommit.mean.toFixed(1)} / ${ph.probe.eventsPerCommit.max}` : '?',
    ),
    row('coord. grants/commit mean/max', (ph) =>
      ph.probe ? `${ph.probe.grantsPerCommit.mean.toFixed(1)} / ${ph.probe.grantsPerCommit.max}` : '?',
    ),
    row('coord. acquire->GRANTED p50/p99/max', (ph) =>
      ph.probe
        ? `${ms(ph.probe.serverAcquireMs.p50)} / ${ms(ph.probe.serverAcquireMs.p99)} / ${ms(ph.probe.serverAcquireMs.max)} ms`
        : '?',
    ),
    row('coord. heap after full GC', (ph) => (ph.probe ? mib(ph.probe.heapUsedAfterGcBytes) : '?')),
    row('coord. GC pauses n / total / max', (ph) => (ph.probe ? gcText(ph.probe.gcPauses) : '?')),
    row('coord. event-loop delay p50/p99/max', (ph) =>
      ph.probe
        ? `${ms(ph.probe.eventLoopDelayMs.p50)} / ${ms(ph.probe.eventLoopDelayMs.p99)} / ${ms(ph.probe.eventLoopDelayMs.max)} ms`
        : '?',
    ),
    row('client processes CPU (sum)', (ph) => `${ph.clientProcessesCpuPercent.toFixed(0)}%`),
    row('other processes CPU (not this run)', (ph) => `${ph.otherProcessesCpuPercent.toFixed(0)}%`),
    row(
      'machine CPU busy / iowait',
      (ph) =>
        `${ph.machineBusyPercent.toFixed(0)}% / ${ph.machineIowaitPercent.toFixed(0)}% of ${r.machine.cores} cores`,
    ),
    row(
      'client event-loop delay p99/max',
      (ph) => `${ms(ph.clientEventLoopP99Ms)} / ${ms(ph.clientEventLoopMaxMs)} ms`,
    ),
    row('client GC pauses n / total / max', (ph) => gcText(ph.clientGcPauses)),
    row('open loop: late ticks p99/max, skipped', (ph) =>
      ph.kind === 'open' ? `${ms(ph.scheduleLagP99Ms)} / ${ms(ph.scheduleLagMaxMs)} ms, ${ph.skippedTicks}` : '-',
    ),
  ];
  // The coordinator's insides (from its probe) do not exist in the null server.
  out.push(table(header, isNull ? phaseRows.filter(([name]) => !name.startsWith('coord. ')) : phaseRows));
  out.push('');

  for (const ph of r.phases) {
    if (ph.otherProcessesCpuPercent > 10) {
      out.push(
        `WARNING: during ${ph.kind === 'open' ? '(a)' : '(b)'} other processes on this machine used ${ph.otherProcessesCpuPercent.toFixed(0)}% of a core: ` +
          'they compete for the same cores, so these figures are worse than the coordinator alone would give.',
      );
    }
  }
  if (!isNull) {
    out.push('');
    out.push(
      'durability: every token a client received vs GRANTED rows in the SQLite history (read-only, after each phase)',
    );
    out.push(
      table(
        ['', ...r.phases.map((ph) => (ph.kind === 'open' ? '(a)' : '(b)'))],
        [
          row('grants received by clients', (ph) => String(ph.durability?.clientGrants ?? '?')),
          row('GRANTED rows in history', (ph) => String(ph.durability?.historyGranted ?? '?')),
          row('received but not in history', (ph) => String(ph.durability?.receivedNotInHistory ?? '?')),
          row('in history, never received', (ph) => String(ph.durability?.inHistoryNotReceived ?? '?')),
          row(
            'releases acked / RELEASED rows',
            (ph) => `${ph.durability?.clientReleases ?? '?'} / ${ph.durability?.historyReleased ?? '?'}`,
          ),
          row('tokens still active after drain', (ph) => String(ph.durability?.activeAfter ?? '?')),
        ],
      ),
    );
  }
  out.push('');

  out.push(
    isNull
      ? 'targets, against the NULL SERVER (the floor; not a result of the coordinator):'
      : 'targets (informational, not a pass/fail):',
  );
  const open = r.phases.find((ph) => ph.kind === 'open');
  const closed = r.phases.find((ph) => ph.kind === 'closed');
  if (open) {
    out.push(
      `  (a) p99 acquire < 5 ms at ${open.targetRatePerSec}/s:  ${ms(open.acquireMs.p99)} ms  -> ${open.acquireMs.p99 < 5 ? 'met' : 'MISSED'}` +
        (open.targetRatePerSec !== 200 || p.clients !== 1000 ? ' (non-default parameters)' : ''),
    );
  }
  if (closed) {
    out.push(
      `  (b) >= 1000 ${isNull ? '(not durable: nothing is stored)' : 'durable'} grants/s:  ${closed.grantsPerSec.toFixed(0)}/s (slowest second ${closed.grantsPerSecMin})  -> ${closed.grantsPerSec >= 1000 ? 'met' : 'MISSED'}` +
        (p.durability !== 'full' ? ' (durability is not full: not comparable)' : ''),
    );
  }
  if (r.coordinatorLogErrors > 0) out.push(`coordinator logged ${r.coordinatorLogErrors} ERROR line(s): see its log`);
  out.push('');
  if (!isNull)
    out.push(`hosts: ${r.hosts.map((h) => `${h.host} cap ${h.maxGuestTokens} fencing ${h.fencing}`).join('; ')}`);

  for (const ph of r.phases) {
    const prof = ph.profile;
    if (!prof) continue;
    const busy = prof.areas.filter((a) => !a.area.startsWith('idle')).reduce((s, a) => s + a.ms, 0);
    out.push('');
    out.push(
      `coordinator CPU profile of ${ph.kind === 'open' ? '(a)' : '(b)'}'s window, ${prof.file}: ${prof.totalMs} ms profiled, ${busy.toFixed(0)} ms on CPU`,
    );
    out.push(
      table(
        ['self time by area', 'ms', '% of on-CPU'],
        prof.areas
          .slice(0, 14)
          .map((a) => [
            a.area,
            a.ms.toFixed(0),
            a.area.startsWith('idle') ? '-' : `${((100 * a.ms) / busy).toFixed(1)}%`,
          ]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['top self time', 'ms'],
        prof.topSelf.map((f) => [f.fn, f.ms.toFixed(0)]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['top total time', 'ms'],
        prof.topTotal.map((f) => [f.fn, f.ms.toFixed(0)]),
      ),
    );
  }
  out.push('');
  out.push(`took ${secs(r.elapsedMs)}`);
  return out.join('\n');
}

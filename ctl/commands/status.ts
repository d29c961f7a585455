/**
 * `headroomctl status`: in a cluster, its members, which one leads and etcd's health first; then one line
 * per host — paused or not, tokens held against the caps, queue, agents, the last fencing number, the host's
 * own load as the coordinator samples it (CPU, PSI, disk await, and the signal in force for it) and the rest
 * of the policy; then the shared targets' use across hosts; then the VMs placement says run on the
 * coordinator's host: state, agent connected, migrating.
 */
import type {
  ClusterInfo__Output,
  HostInfo__Output,
  Policy__Output,
  TargetInfo__Output,
} from '../../proto/generated/headroom/v1';
import { formatBytes, formatIoBudget, formatRate, formatSpan } from '../../common/util/human';
import { formatDuration } from '../../common/util/duration';
import { type Command, hostOption } from '../command';
import { note, print, printJson } from '../context';
import { EXIT_FAILURE } from '../../common/util/exit-codes';
import { formatTable } from '../table';
import { renderPlacement } from '../placement-table';
import { formatPercent } from '../../common/util/human';
import { formatPressure } from './agents';

export const statusCommand: Command = {
  name: 'status',
  examples: ['status', 'status --host pve1 --json'],
  summary:
    "hosts: paused, active tokens, queue, agents, fencing, the host's own load and signal in force, policy; the coordinator's host's VMs; a cluster's members, leader and etcd",
  synopsis: '[--host H]',
  description: [
    "One line per host. GUEST and HYPERVISOR show the tokens held now against the policy's cap (1/4: one of four).",
    "Then one line per shared target (coordinator.yaml's targets): its backups now, on every host, against its",
    'maxConcurrent, and the sum of their I/O budgets against its ioBudget. In a cluster (docs/cluster.md), the',
    "members (any of them answers), which one leads, and each etcd endpoint's health come first.",
  ].join('\n'),
  options: [hostOption()],
  async run(ctx, args) {
    const [res, { targets }, cluster] = await Promise.all([
      ctx.admin('ListHosts', {}),
      ctx.admin('ListTargets', {}),
      ctx.admin('GetCluster', {}),
    ]);
    const host = args.get<string>('host');
    const hosts = res.hosts.filter((h) => host === undefined || h.host === host);
    if (host !== undefined && hosts.length === 0) {
      // As the calls that take a host say NOT_FOUND for one they do not know.
      note(ctx, `no host named ${host}`);
      return EXIT_FAILURE;
    }
    if (ctx.json) {
      printJson(ctx, cluster.clustered ? { cluster, hosts, targets } : { hosts, targets });
      return 0;
    }
    const sections = [
      ...(cluster.clustered ? [renderCluster(cluster, Date.now())] : []),
      renderHosts(hosts),
      targets.length > 0 ? renderTargets(targets) : '',
      renderPlacement(hosts),
    ];
    print(ctx, sections.filter(Boolean).join('\n\n'));
    return 0;
  },
};

/** The cluster's members and etcd's endpoints, as two tables under a line naming the leader. */
export function renderCluster(c: ClusterInfo__Output, now: number): string {
  const leader = c.members.find((m) => m.leader);
  const head = `Cluster ${c.name}: ${c.members.length} member${c.members.length === 1 ? '' : 's'}, ${leader ? `leader ${leader.host}` : 'no leader'}, etcd ${c.etcd.filter((e) => e.healthy).length}/${c.etcd.length} healthy`;
  const members = formatTable(
    [
      { header: 'MEMBER', maxWidth: 32 },
      { header: 'ADDRESS' },
      { header: 'ROLE' },
      { header: 'VERSION' },
      { header: 'UP' },
    ],
    c.members.map((m) => [
      m.host,
      m.address,
      m.leader ? 'leader' : 'follower',
      m.version,
      formatSpan(now - Number(m.startedUnixMs)),
    ]),
    { empty: 'no members registered' },
  );
  const etcd = formatTable(
    [
      { header: 'ETCD' },
      { header: 'HEALTH', maxWidth: 60 },
      { header: 'RAFT' },
      { header: 'VERSION' },
      { header: 'DB', align: 'right' },
    ],
    c.etcd.map((e) => [
      e.endpoint,
      e.healthy ? 'healthy' : `unhealthy: ${e.error}`,
      e.raftLeader ? 'leader' : e.healthy ? 'follower' : '-',
      e.version || '-',
      e.healthy ? formatBytes(Number(e.dbSizeBytes)) : '-',
    ]),
  );
  return `${head}\n${members}\n\n${etcd}`;
}

/** "ttl 30s, overrun no, reports every 10s". */
export function policySummary(p: Policy__Output | null): string {
  if (!p) return '-';
  return `ttl ${formatDuration(p.leaseTtlMs)}, overrun ${p.allowOverrun ? 'yes' : 'no'}, reports every ${formatDuration(p.reportIntervalMs)}`;
}

export function renderHosts(hosts: readonly HostInfo__Output[]): string {
  const sorted = [...hosts].sort((a, b) => a.host.localeCompare(b.host));
  return formatTable(
    [
      { header: 'HOST', maxWidth: 32 },
      { header: 'STATE', maxWidth: 48 },
      { header: 'GUEST', align: 'right' },
      { header: 'HYPERVISOR', align: 'right' },
      { header: 'QUEUED', align: 'right' },
      { header: 'AGENTS', align: 'right' },
      { header: 'FENCING', align: 'right' },
      { header: 'HOST CPU', align: 'right' },
      { header: 'HOST PSI IO/CPU/MEM', align: 'right' },
      { header: 'HOST AWAIT', align: 'right' },
      { header: 'HOST SIGNAL' },
      { header: 'POLICY' },
    ],
    sorted.map((h) => [
      h.host,
      h.paused ? `paused${h.pauseReason ? `: ${h.pauseReason}` : ''}` : 'active',
      `${h.activeGuest}/${h.policy?.maxGuestTokens ?? '?'}`,
      `${h.activeHypervisor}/${h.policy?.maxHypervisorTokens ?? '?'}`,
      String(h.queued),
      String(h.agentsConnected),
      String(h.fencing),
      h.hostLoad ? formatPercent(h.hostLoad.cpuPercent) : '-',
      h.hostLoad ? formatPressure(h.hostLoad) : '-',
      h.hostLoad?.diskAwaitMs !== undefined && h.hostLoad?.diskAwaitMs !== null
        ? `${h.hostLoad.diskAwaitMs.toFixed(1)} ms`
        : '-',
      h.hostLoadSignal || '-',
      policySummary(h.policy),
    ]),
    { empty: 'no hosts' },
  );
}

/** One line per shared target: backups on it now (every host) against its concurrency, I/O against its budget. */
export function renderTargets(targets: readonly TargetInfo__Output[]): string {
  return formatTable(
    [
      { header: 'TARGET', maxWidth: 32 },
      { header: 'BACKUPS', align: 'right' },
      { header: 'I/O IN USE', align: 'right' },
      { header: 'I/O BUDGET', align: 'right' },
      { header: 'QUEUED', align: 'right' },
    ],
    targets.map((t) => [
      t.name,
      `${t.active}/${t.maxConcurrent}`,
      formatRate(t.ioBytesPerSec),
      formatIoBudget(t.ioBudgetBytesPerSec),
      String(t.queued),
    ]),
  );
}

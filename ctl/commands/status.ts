/**
 * `headroomctl status`: one line per host — paused or not, tokens held against the caps, queue, agents,
 * the last fencing number and the rest of the policy; then the shared targets' use across hosts; then the
 * VMs placement says run on the coordinator's host: state, agent connected, migrating.
 */
import type { HostInfo__Output, Policy__Output, TargetInfo__Output } from '../../proto/generated/headroom/v1';
import { formatIoBudget, formatRate } from '../../common/util/human';
import { formatDuration } from '../../common/util/duration';
import { type Command, hostOption } from '../command';
import { note, print, printJson } from '../context';
import { EXIT_FAILURE } from '../../common/util/exit-codes';
import { formatTable } from '../table';
import { renderPlacement } from '../placement-table';

export const statusCommand: Command = {
  name: 'status',
  examples: ['status', 'status --host pve1 --json'],
  summary: "hosts: paused, active tokens, queue, agents, fencing, policy; the coordinator's host's VMs",
  synopsis: '[--host H]',
  description: [
    "One line per host. GUEST and HYPERVISOR show the tokens held now against the policy's cap (1/4: one of four).",
    "Then one line per shared target (coordinator.yaml's targets): its backups now, on every host, against its",
    'maxConcurrent, and the sum of their I/O budgets against its ioBudget.',
  ].join('\n'),
  options: [hostOption()],
  async run(ctx, args) {
    const [res, { targets }] = await Promise.all([ctx.admin('ListHosts', {}), ctx.admin('ListTargets', {})]);
    const host = args.get<string>('host');
    const hosts = res.hosts.filter((h) => host === undefined || h.host === host);
    if (host !== undefined && hosts.length === 0) {
      // As the calls that take a host say NOT_FOUND for one they do not know.
      note(ctx, `no host named ${host}`);
      return EXIT_FAILURE;
    }
    if (ctx.json) {
      printJson(ctx, { hosts, targets });
      return 0;
    }
    const parts = [renderHosts(hosts), targets.length > 0 ? renderTargets(targets) : '', renderPlacement(hosts)];
    print(ctx, parts.filter((p) => p).join('\n\n'));
    return 0;
  },
};

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

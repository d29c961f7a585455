/**
 * `headroomctl status`: one line per host — paused or not, tokens held against the caps, queue, agents,
 * the last fencing number, the host's own load as the coordinator samples it (CPU, PSI, disk await, and the
 * signal in force for it) and the rest of the policy; then the VMs placement says run on the coordinator's
 * host: state, agent connected, migrating.
 */
import type { HostInfo__Output, Policy__Output } from '../../proto/generated/headroom/v1';
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
    "hosts: paused, active tokens, queue, agents, fencing, the host's own load and signal in force, policy; the coordinator's host's VMs",
  synopsis: '[--host H]',
  description:
    "One line per host. GUEST and HYPERVISOR show the tokens held now against the policy's cap (1/4: one of four).",
  options: [hostOption()],
  async run(ctx, args) {
    const res = await ctx.admin('ListHosts', {});
    const host = args.get<string>('host');
    const hosts = res.hosts.filter((h) => host === undefined || h.host === host);
    if (host !== undefined && hosts.length === 0) {
      // As the calls that take a host say NOT_FOUND for one they do not know.
      note(ctx, `no host named ${host}`);
      return EXIT_FAILURE;
    }
    if (ctx.json) {
      printJson(ctx, { hosts });
      return 0;
    }
    const placement = renderPlacement(hosts);
    print(ctx, placement ? `${renderHosts(hosts)}\n\n${placement}` : renderHosts(hosts));
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

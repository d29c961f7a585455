/**
 * `headroomctl agents`: the agents the coordinator knows, whether they are connected now, when they last
 * said hello, their last load report (with what their work waits for: PSI and disk await, and which signal
 * their budgets follow) and the jobs they declared; then each backup they run, with the
 * budget they enforce on it, whether it is paused, and by which mechanism; then the VMs placement says run
 * on the coordinator's host, with the ones whose agent is connected.
 */
import type { AgentInfo__Output, Enforcement__Output, LoadReport__Output } from '../../proto/generated/headroom/v1';
import { type Command, hostOption } from '../command';
import { print, printJson } from '../context';
import { formatCpuShare, formatIoBudget, formatPercent, formatRate, formatRelative } from '../../common/util/human';
import { formatTable } from '../table';
import { shortId } from './tokens';
import { renderPlacement, vmLabel } from '../placement-table';

export const agentsCommand: Command = {
  name: 'agents',
  examples: ['agents', 'agents --host pve1 --json'],
  summary:
    'agents: connection, last hello, last load and pressure with the signal in force, declared jobs, the budgets of their backups, and the VMs on this host',
  synopsis: '[--host H]',
  options: [hostOption()],
  async run(ctx, args) {
    const host = args.get<string>('host');
    const res = await ctx.admin('ListAgents', { host: host ?? '' });
    const hosts = (await ctx.admin('ListHosts', {})).hosts.filter((h) => host === undefined || h.host === host);
    const placement = hosts.filter((h) => h.placementSource);
    if (ctx.json) {
      printJson(ctx, placement.length ? { ...res, placement } : res);
      return 0;
    }
    const parts = [renderAgents(res.agents, ctx.now()), renderBudgets(res.agents), renderPlacement(hosts)];
    print(ctx, parts.filter((p) => p !== '').join('\n\n'));
    return 0;
  },
};

function hasLoad(l: LoadReport__Output | null): l is LoadReport__Output {
  return l !== null && l.sampledUnixMs > 0;
}

export function renderAgents(agents: readonly AgentInfo__Output[], now: number): string {
  const sorted = [...agents].sort((a, b) => a.host.localeCompare(b.host) || a.vm.localeCompare(b.vm));
  return formatTable(
    [
      { header: 'VM', maxWidth: 36 },
      { header: 'HOST', maxWidth: 24 },
      { header: 'HOSTNAME', maxWidth: 24 },
      { header: 'CONNECTED' },
      { header: 'LAST HELLO' },
      { header: 'CPU', align: 'right' },
      { header: 'MEM', align: 'right' },
      { header: 'DISK READ', align: 'right' },
      { header: 'DISK WRITE', align: 'right' },
      { header: 'LOAD1', align: 'right' },
      { header: 'PSI IO/CPU/MEM', align: 'right' },
      { header: 'AWAIT', align: 'right' },
      { header: 'SIGNAL' },
      { header: 'JOBS', maxWidth: 40 },
    ],
    sorted.map((a) => {
      const l = hasLoad(a.lastLoad) ? a.lastLoad : undefined;
      return [
        vmLabel(a.vm, a.vmName),
        a.host,
        a.hostname || '-',
        a.connected ? 'yes' : 'no',
        formatRelative(a.lastHelloUnixMs, now),
        l ? formatPercent(l.cpuPercent) : '-',
        l && l.memTotalBytes > 0 ? formatPercent((100 * l.memUsedBytes) / l.memTotalBytes) : '-',
        l ? formatRate(l.diskReadBytesPerSec) : '-',
        l ? formatRate(l.diskWriteBytesPerSec) : '-',
        l ? l.load1.toFixed(2) : '-',
        l ? formatPressure(l) : '-',
        l?.diskAwaitMs !== undefined ? `${l.diskAwaitMs.toFixed(1)} ms` : '-',
        a.loadSignal || '-',
        a.jobs.length ? a.jobs.map((j) => j.name).join(', ') : '-',
      ];
    }),
    { empty: 'no agents' },
  );
}

type PressureFigures = { someAvg10: number; fullAvg10: number } | null;

/** "12.5/1.0/0.0%": io some, cpu some and memory full avg10, as the budgets read them; "missing" without PSI. */
export function formatPressure(l: {
  ioPressure: PressureFigures;
  cpuPressure: PressureFigures;
  memoryPressure: PressureFigures;
}): string {
  if (!l.ioPressure || !l.cpuPressure || !l.memoryPressure) return 'missing';
  const f = (v: number) => v.toFixed(1);
  return `${f(l.ioPressure.someAvg10)}/${f(l.cpuPressure.someAvg10)}/${f(l.memoryPressure.fullAvg10)}%`;
}

const ENFORCEMENT: Record<Enforcement__Output, string> = {
  ENFORCEMENT_CGROUP_V2: 'cgroup v2',
  ENFORCEMENT_CGROUP_V1: 'cgroup v1',
  ENFORCEMENT_SIGNALS: 'signals',
  ENFORCEMENT_UNSPECIFIED: 'unknown',
};

/** The backups the agents run, with what each agent reports enforcing on them; '' when there are none. */
export function renderBudgets(agents: readonly AgentInfo__Output[]): string {
  const rows = [...agents]
    .sort((a, b) => a.host.localeCompare(b.host) || a.vm.localeCompare(b.vm))
    .flatMap((a) =>
      a.budgets.map((b) => [
        vmLabel(a.vm, a.vmName),
        shortId(b.tokenId),
        b.paused ? 'paused' : 'running',
        formatCpuShare(b.budget?.cpuPercent ?? 0),
        formatIoBudget(b.budget?.ioBytesPerSec ?? 0),
        ENFORCEMENT[b.enforcement],
        b.detail || '-',
      ]),
    );
  return formatTable(
    [
      { header: 'VM', maxWidth: 36 },
      { header: 'BACKUP' },
      { header: 'STATE' },
      { header: 'CPU BUDGET', align: 'right' },
      { header: 'I/O BUDGET', align: 'right' },
      { header: 'ENFORCED BY' },
      { header: 'DETAIL', maxWidth: 60 },
    ],
    rows,
  );
}

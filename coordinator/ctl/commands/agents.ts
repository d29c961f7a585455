/**
 * `headroomctl agents`: the agents the coordinator knows, whether they are connected now, when they last
 * said hello, their last load report and the jobs they declared.
 */
import type { AgentInfo__Output, LoadReport__Output } from '../../../proto/generated/headroom/v1';
import { type Command, hostOption } from '../command';
import { print, printJson } from '../context';
import { formatPercent, formatRate, formatRelative } from '../human';
import { formatTable } from '../table';

export const agentsCommand: Command = {
  name: 'agents',
  summary: 'agents: connection, last hello, last load, declared jobs',
  synopsis: '[--host H]',
  options: [hostOption()],
  async run(ctx, args) {
    const host = args.get<string>('host');
    const res = await ctx.admin('ListAgents', { host: host ?? '' });
    if (ctx.json) {
      printJson(ctx, res);
      return 0;
    }
    print(ctx, renderAgents(res.agents, ctx.now()));
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
      { header: 'JOBS', maxWidth: 40 },
    ],
    sorted.map((a) => {
      const l = hasLoad(a.lastLoad) ? a.lastLoad : undefined;
      return [
        a.vm,
        a.host,
        a.hostname || '-',
        a.connected ? 'yes' : 'no',
        formatRelative(a.lastHelloUnixMs, now),
        l ? formatPercent(l.cpuPercent) : '-',
        l && l.memTotalBytes > 0 ? formatPercent((100 * l.memUsedBytes) / l.memTotalBytes) : '-',
        l ? formatRate(l.diskReadBytesPerSec) : '-',
        l ? formatRate(l.diskWriteBytesPerSec) : '-',
        l ? l.load1.toFixed(2) : '-',
        a.jobs.length ? a.jobs.map((j) => j.name).join(', ') : '-',
      ];
    }),
    { empty: 'no agents' },
  );
}

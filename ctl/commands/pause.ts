/**
 * `headroomctl pause` and `resume`: stop and restart granting tokens on a host. Tokens already held are
 * not touched by a pause; requests keep waiting in the queue.
 */
import type { HostInfo__Output } from '../../proto/generated/headroom/v1';
import { parseText } from '../../common/util/cli-args';
import { type Command, targetHostOption } from '../command';
import { print, printJson } from '../context';

export const pauseCommand: Command = {
  name: 'pause',
  examples: ["pause --host pve1 --reason 'storage maintenance'"],
  summary: 'stop granting tokens on a host (held tokens are kept)',
  synopsis: '[--host H] [--reason TEXT]',
  description: 'New requests wait in the queue until the host is resumed; tokens already held keep running.',
  options: [
    targetHostOption('the host to pause'),
    { name: 'reason', value: 'TEXT', help: 'why, shown in status and history', parse: parseText },
  ],
  async run(ctx, args) {
    const host = args.get<string>('host') ?? '';
    const info = await ctx.admin('PauseHost', { host, reason: args.get<string>('reason') ?? '' });
    if (ctx.json) printJson(ctx, info);
    else print(ctx, describeHostState(info));
    return 0;
  },
};

export const resumeCommand: Command = {
  name: 'resume',
  examples: ['resume --host pve1'],
  summary: 'grant tokens on a paused host again',
  synopsis: '[--host H]',
  options: [targetHostOption('the host to resume')],
  async run(ctx, args) {
    const host = args.get<string>('host') ?? '';
    const info = await ctx.admin('ResumeHost', { host });
    if (ctx.json) printJson(ctx, info);
    else print(ctx, describeHostState(info));
    return 0;
  },
};

/** "host-a paused: maintenance (2 queued)" or "host-a resumed (2 queued)". */
export function describeHostState(info: HostInfo__Output): string {
  const state = info.paused ? `paused${info.pauseReason ? `: ${info.pauseReason}` : ''}` : 'resumed: granting tokens';
  return `${info.host} ${state} (${info.activeGuest} guest and ${info.activeHypervisor} hypervisor tokens held, ${info.queued} queued)`;
}

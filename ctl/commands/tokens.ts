/**
 * `headroomctl tokens`: the tokens held now and the requests waiting for one, as the coordinator sees
 * them at this instant.
 */
import type { QueuedRequest__Output, Token__Output } from '../../proto/generated/headroom/v1';
import { type Command, hostOption } from '../command';
import { print, printJson } from '../context';
import { formatClock, formatClockRelative, formatRelative, formatSpan } from '../../common/util/human';
import { formatTable } from '../table';
import { tokenKind } from '../../proto/enums';

export const tokensCommand: Command = {
  name: 'tokens',
  examples: ['tokens', 'tokens --host pve1'],
  summary: 'active tokens and queued requests',
  synopsis: '[--host H]',
  options: [hostOption()],
  async run(ctx, args) {
    const host = args.get<string>('host');
    const res = await ctx.admin('ListTokens', { host: host ?? '' });
    if (ctx.json) {
      printJson(ctx, res);
      return 0;
    }
    const now = ctx.now();
    print(ctx, `Active tokens\n${renderActive(res.active, now)}\n\nQueued requests\n${renderQueued(res.queued, now)}`);
    return 0;
  },
};

/** Token ids are long; eight characters tell them apart on one host and are accepted by `revoke`. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id || '-';
}

export function kindName(kind: string): string {
  return kind === 'TOKEN_KIND_UNSPECIFIED' || kind === '' ? '-' : tokenKind.show(kind);
}

export function renderActive(tokens: readonly Token__Output[], now: number): string {
  const sorted = [...tokens].sort((a, b) => a.host.localeCompare(b.host) || a.fencing - b.fencing);
  return formatTable(
    [
      { header: 'ID' },
      { header: 'KIND' },
      { header: 'HOST', maxWidth: 24 },
      { header: 'VM', maxWidth: 36 },
      { header: 'JOB', maxWidth: 24 },
      { header: 'FENCING', align: 'right' },
      { header: 'SLOT' },
      { header: 'WINDOW END' },
      { header: 'EXPIRES' },
    ],
    sorted.map((t) => [
      shortId(t.tokenId),
      kindName(t.kind),
      t.host,
      t.vm || '-',
      t.job || '-',
      String(t.fencing),
      t.slot ? `${formatClock(t.slot.startUnixMs, now)} → ${formatClock(t.slot.expectedEndUnixMs, now)}` : '-',
      t.slot?.windowEndUnixMs ? formatClock(t.slot.windowEndUnixMs, now) : '-',
      t.expiresUnixMs ? formatRelative(t.expiresUnixMs, now) : '-',
    ]),
    { empty: 'no active tokens' },
  );
}

export function renderQueued(queued: readonly QueuedRequest__Output[], now: number): string {
  const sorted = [...queued].sort(
    (a, b) => (a.request?.host ?? '').localeCompare(b.request?.host ?? '') || a.position - b.position,
  );
  return formatTable(
    [
      { header: 'POS', align: 'right' },
      { header: 'KIND' },
      { header: 'HOST', maxWidth: 24 },
      { header: 'VM', maxWidth: 36 },
      { header: 'JOB', maxWidth: 24 },
      { header: 'WAITING' },
      { header: 'WAITING FOR', maxWidth: 48 },
      { header: 'ESTIMATED START' },
    ],
    sorted.map((q) => [
      String(q.position),
      kindName(q.request?.kind ?? ''),
      q.request?.host || '-',
      q.request?.vm || '-',
      q.request?.job || '-',
      q.queuedUnixMs ? formatSpan(now - q.queuedUnixMs) : '-',
      q.waitingFor || '-',
      formatClockRelative(q.estimatedStartUnixMs, now),
    ]),
    { empty: 'no queued requests' },
  );
}

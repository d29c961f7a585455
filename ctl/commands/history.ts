/**
 * `headroomctl history`: token events in time order, optionally narrowed to a host or a VM. With
 * `--follow` it then streams new events (AdminService.WatchHistory) until interrupted, picking the stream
 * up again after the last event seen if the coordinator goes away and comes back.
 */
import * as grpc from '@grpc/grpc-js';
import type { HistoryEvent__Output } from '../../proto/generated/headroom/v1';
import { parsePositiveInt, parseString } from '../../common/util/cli-args';
import { type Command, hostOption } from '../command';
import { type Context, note, print } from '../context';
import { statusName } from '../../common/client/call-status';
import { RpcError, toRpcError } from '../errors';
import { formatClock } from '../../common/util/human';
import { type Column, formatHeader, formatTable } from '../table';
import { kindName, shortId } from './tokens';
import { historyEventType } from '../../proto/enums';

/** Pause before subscribing again after the stream ended, so a coordinator that keeps ending it is not hammered. */
const RESUBSCRIBE_DELAY_MS = 1_000;

export const historyCommand: Command = {
  name: 'history',
  examples: ['history --limit 50', 'history --host pve1 --vm web1 --follow'],
  summary: 'token events in time order (--follow streams new ones)',
  synopsis: '[--host H] [--vm V] [--limit N] [--follow]',
  description:
    "Prints the newest events (the coordinator's default is 100), oldest first. --follow then prints each new\n" +
    'event as it is committed until Ctrl-C; with --json, every event is one JSON object per line.',
  options: [
    hostOption(),
    { name: 'vm', value: 'V', help: 'only this VM', parse: parseString },
    {
      name: 'limit',
      value: 'N',
      help: "at most the N newest events (default: the coordinator's, 100)",
      parse: parsePositiveInt,
    },
    { name: 'follow', help: 'keep printing new events until interrupted' },
  ],
  async run(ctx, args) {
    const host = args.get<string>('host') ?? '';
    const vm = args.get<string>('vm') ?? '';
    const res = await ctx.admin('ListHistory', { host, vm, limit: args.get<number>('limit') ?? 0 });
    const events = sortBySeq(res.events);
    if (!args.flag('follow')) {
      if (ctx.json) print(ctx, JSON.stringify({ events }, null, 2));
      else print(ctx, renderHistory(events, ctx.now()));
      return 0;
    }
    if (ctx.json) for (const e of events) print(ctx, JSON.stringify(e));
    else {
      print(ctx, formatHeader(STREAM_COLUMNS));
      for (const e of events) print(ctx, historyLine(e, ctx.now()));
    }
    const lastSeq = events.length ? events[events.length - 1].seq : 0;
    return follow(ctx, host, vm, lastSeq);
  },
};

export function sortBySeq(events: readonly HistoryEvent__Output[]): HistoryEvent__Output[] {
  return [...events].sort((a, b) => a.seq - b.seq);
}

const COLUMNS: Column[] = [
  { header: 'TIME' },
  { header: 'TYPE' },
  { header: 'HOST', maxWidth: 24 },
  { header: 'VM', maxWidth: 36 },
  { header: 'JOB', maxWidth: 24 },
  { header: 'KIND' },
  { header: 'TOKEN' },
  { header: 'FENCING', align: 'right' },
  { header: 'DETAIL', maxWidth: 80 },
];

/** Streamed rows cannot be measured in advance: fixed widths, cut to fit. */
const STREAM_COLUMNS: Column[] = COLUMNS.map((c) => {
  const w: Record<string, number> = { TIME: 8, TYPE: 14, HOST: 12, VM: 16, JOB: 12, KIND: 10, TOKEN: 8, FENCING: 7 };
  const fixed = w[c.header];
  return fixed === undefined ? c : { ...c, minWidth: fixed, maxWidth: fixed };
});

function cells(e: HistoryEvent__Output, now: number): string[] {
  return [
    formatClock(e.atUnixMs, now),
    historyEventType.show(e.type),
    e.host || '-',
    e.vm || '-',
    e.job || '-',
    kindName(e.kind),
    e.tokenId ? shortId(e.tokenId) : '-',
    e.fencing ? String(e.fencing) : '-',
    e.detail || '',
  ];
}

export function renderHistory(events: readonly HistoryEvent__Output[], now: number): string {
  return formatTable(
    COLUMNS,
    events.map((e) => cells(e, now)),
    { empty: 'no events' },
  );
}

/** One event as a row under formatHeader(STREAM_COLUMNS). */
export function historyLine(e: HistoryEvent__Output, now: number): string {
  return formatTable(STREAM_COLUMNS, [cells(e, now)], { header: false });
}

/**
 * Streams events after `afterSeq` until interrupted (resolves 0). Subscribes again after the last event
 * seen when the stream breaks because the coordinator went away or ended it; rejects with an RpcError
 * for any other failure (the coordinator refused the call).
 */
function follow(ctx: Context, host: string, vm: string, afterSeq: number): Promise<number> {
  let lastSeq = afterSeq;
  let call: grpc.ClientReadableStream<HistoryEvent__Output> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  return new Promise<number>((resolve, reject) => {
    const finish = (err?: unknown) => {
      stopped = true;
      removeInterrupt();
      if (timer) clearTimeout(timer);
      call?.removeAllListeners();
      call?.on('error', () => {}); // a late error of the cancelled call must not become an uncaught one
      call?.cancel();
      if (err) reject(err);
      else resolve(0);
    };
    const removeInterrupt = ctx.onInterrupt(() => finish());

    const resubscribe = (why: string) => {
      if (stopped) return;
      note(ctx, `${why}; following again from event ${lastSeq} once the coordinator at ${ctx.coordinator} answers`);
      timer = setTimeout(() => subscribe(true), RESUBSCRIBE_DELAY_MS);
    };

    const subscribe = (waitForReady: boolean) => {
      if (stopped) return;
      // A follow runs for as long as it is wanted: no deadline; the channel's keepalive notices a dead peer.
      const c = ctx.clients().admin.WatchHistory({ host, afterSeq: lastSeq }, new grpc.Metadata({ waitForReady }));
      call = c;
      let ended = false;
      c.on('data', (e: HistoryEvent__Output) => {
        if (e.seq <= lastSeq) return; // already printed (a replay after subscribing again)
        lastSeq = e.seq;
        if (vm && e.vm !== vm) return; // WatchHistory filters by host only
        if (ctx.json) print(ctx, JSON.stringify(e));
        else print(ctx, historyLine(e, ctx.now()));
      });
      c.on('error', (err: grpc.ServiceError) => {
        if (stopped || ended) return;
        ended = true;
        if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED) {
          resubscribe(`lost the history stream (${statusName(err.code)}: ${err.details})`);
          return;
        }
        finish(toRpcError('WatchHistory', err) as RpcError);
      });
      c.on('end', () => {
        if (stopped || ended) return;
        ended = true;
        resubscribe('the coordinator ended the history stream');
      });
    };
    subscribe(false);
  });
}

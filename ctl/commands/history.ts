/**
 * `headroomctl history`: token events in time order, narrowed to a host, a VM, event types and a start
 * time. The coordinator filters (ListHistory's fields), so that --limit counts the events asked for. With
 * `--follow` it then streams new events (AdminService.WatchHistory, which filters by host only: the other
 * filters are applied here) until interrupted, picking the stream up again after the last event seen if the
 * coordinator goes away and comes back. RENEWED events (one per lease every TTL/3) are left out unless asked.
 */
import * as grpc from '@grpc/grpc-js';
import type { HistoryEvent__Output } from '../../proto/generated/headroom/v1';
import type { HistoryEventType } from '../../proto/generated/headroom/v1/HistoryEventType';
import {
  didYouMean,
  parsePositiveInt,
  parseSince,
  parseString,
  type Since,
  sinceUnixMs,
} from '../../common/util/cli-args';
import { type Command, hostOption } from '../command';
import { type Context, note, print, printJson, printJsonLine } from '../context';
import { statusName } from '../../common/client/call-status';
import { RpcError, toRpcError } from '../errors';
import { formatDateTime } from '../../common/util/human';
import { type Column, formatHeader, formatTable } from '../table';
import { kindName, shortId } from './tokens';
import { vmLabel } from '../placement-table';
import { historyEventType } from '../../proto/enums';

/** Pause before subscribing again after the stream ended, so a coordinator that keeps ending it is not hammered. */
const RESUBSCRIBE_DELAY_MS = 1_000;

type EventType = (typeof historyEventType.names)[number];

/** Left out unless asked for by --type or --all: one per running lease every TTL/3, they drown the rest. */
const HIDDEN_BY_DEFAULT: readonly EventType[] = ['RENEWED'];

/** `--type GRANTED,DENIED`: event type names, any case, each known. */
export function parseTypes(raw: string): EventType[] {
  const names = raw.split(',').map((t) => t.trim().toUpperCase());
  for (const name of names) {
    if (!(historyEventType.names as readonly string[]).includes(name)) {
      const known = historyEventType.names.join(', ');
      throw new Error(`unknown event type "${name}"${didYouMean(name, historyEventType.names)}; known: ${known}`);
    }
  }
  return [...new Set(names as EventType[])];
}

export const historyCommand: Command = {
  name: 'history',
  examples: [
    'history --limit 50',
    'history --since 2h --type GRANTED,DENIED',
    'history --since 2026-12-06T03:00 --vm web1 --wide',
    'history --host pve1 --vm web1 --follow',
  ],
  summary: 'token events in time order (--follow streams new ones)',
  synopsis: '[--host H] [--vm V] [--type T,…|--all] [--since DURATION|TIME] [--limit N] [--wide] [--follow]',
  description:
    "Prints the newest events (the coordinator's default is 100), oldest first, with their local date and\n" +
    'time. RENEWED events are left out unless --type names them or --all is given. DETAIL is cut to the\n' +
    "terminal's width (or $COLUMNS; not cut into a pipe or a file) unless --wide. --follow then prints each new event as it is committed\n" +
    'until Ctrl-C, in the same columns; with --json, every event is one JSON object per line.',
  options: [
    hostOption(),
    { name: 'vm', value: 'V', help: 'only this VM', parse: parseString },
    {
      name: 'type',
      value: 'T,…',
      help: `only these event types, comma-separated: ${historyEventType.names.join(', ')}`,
      parse: parseTypes,
    },
    { name: 'all', help: 'every event type, RENEWED included' },
    {
      name: 'since',
      value: 'DURATION|TIME',
      help: 'only events since this long ago (2h) or this local time (2026-12-06T03:00)',
      parse: parseSince,
    },
    {
      name: 'limit',
      value: 'N',
      help: "at most the N newest events (default: the coordinator's, 100)",
      parse: parsePositiveInt,
    },
    { name: 'wide', help: 'print DETAIL whole instead of cutting it to the terminal width' },
    { name: 'follow', help: 'keep printing new events until interrupted' },
  ],
  async run(ctx, args) {
    const since = args.get<Since>('since');
    const filter: HistoryFilter = {
      host: args.get<string>('host') ?? '',
      vm: args.get<string>('vm') ?? '',
      types:
        args.get<EventType[]>('type') ??
        (args.flag('all') ? [] : historyEventType.names.filter((t) => !HIDDEN_BY_DEFAULT.includes(t))),
      sinceUnixMs: since ? sinceUnixMs(since, ctx.now()) : 0,
    };
    const res = await ctx.admin('ListHistory', {
      host: filter.host,
      vm: filter.vm,
      limit: args.get<number>('limit') ?? 0,
      types: filter.types.map((t) => historyEventType.toWire(t) as HistoryEventType),
      sinceUnixMs: filter.sinceUnixMs,
    });
    const events = sortBySeq(res.events);
    const wide = args.flag('wide');
    if (!args.flag('follow')) {
      if (ctx.json) printJson(ctx, { events });
      else print(ctx, renderHistory(events, { width: wide ? undefined : ctx.width }));
      return 0;
    }
    const width = wide ? undefined : ctx.width;
    const show = (e: HistoryEvent__Output) => (ctx.json ? printJsonLine(ctx, e) : print(ctx, historyLine(e, width)));
    if (!ctx.json) print(ctx, formatHeader(streamColumns(width)));
    events.forEach(show);
    const lastSeq = events.length ? events[events.length - 1].seq : 0;
    return follow(ctx, filter, lastSeq, show);
  },
};

/** What the events shown must match; WatchHistory applies only `host`, matches() the rest. */
interface HistoryFilter {
  host: string;
  vm: string;
  /** Empty: every type. */
  types: readonly EventType[];
  /** 0: from the first. */
  sinceUnixMs: number;
}

function matches(f: HistoryFilter, e: HistoryEvent__Output): boolean {
  const type = historyEventType.fromWire(e.type);
  return (
    // The coordinator keys a VM by its identity; a follower may have named it by its friendly name.
    (!f.vm || e.vm === f.vm || e.vmName === f.vm) &&
    (f.types.length === 0 || (type !== undefined && f.types.includes(type))) &&
    e.atUnixMs >= f.sinceUnixMs
  );
}

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
  { header: 'DETAIL' },
];

/** DETAIL gets what is left of `width` after the other columns; at least this much, even on a narrow terminal. */
const MIN_DETAIL_WIDTH = 20;

/** The columns with DETAIL (the last) cut to fit `width` after the others' widths, or whole when undefined. */
function fitDetail(columns: readonly Column[], otherWidths: readonly number[], width: number | undefined): Column[] {
  if (width === undefined) return [...columns];
  const gaps = 2 * (columns.length - 1);
  const others = otherWidths.reduce((a, b) => a + b, 0);
  const detail = Math.max(MIN_DETAIL_WIDTH, width - others - gaps);
  return columns.map((c, i) => (i === columns.length - 1 ? { ...c, maxWidth: detail } : c));
}

/** Streamed rows cannot be measured in advance: fixed widths, cut to fit, the same columns as the list. */
function streamColumns(width: number | undefined): Column[] {
  const w: Record<string, number> = {
    TIME: 19,
    TYPE: 14,
    HOST: 12,
    VM: 16,
    JOB: 12,
    KIND: 10,
    TOKEN: 8,
    FENCING: 7,
  };
  const fixed = COLUMNS.map((c) => {
    const n = w[c.header];
    return n === undefined ? c : { ...c, minWidth: n, maxWidth: n };
  });
  return fitDetail(
    fixed,
    fixed.slice(0, -1).map((c) => c.minWidth ?? 0),
    width,
  );
}

function cells(e: HistoryEvent__Output): string[] {
  return [
    // A history spans days: every row has its date.
    formatDateTime(e.atUnixMs),
    historyEventType.show(e.type),
    e.host || '-',
    vmLabel(e.vm, e.vmName) || '-',
    e.job || '-',
    kindName(e.kind),
    e.tokenId ? shortId(e.tokenId) : '-',
    e.fencing ? String(e.fencing) : '-',
    e.detail || '',
  ];
}

/** One event as a row under formatHeader(streamColumns(width)): fixed widths, DETAIL cut to `width`. */
export function historyLine(e: HistoryEvent__Output, width?: number): string {
  return formatTable(streamColumns(width), [cells(e)], { header: false });
}

/** The events as a table; DETAIL cut so that each line fits `width` (undefined: never cut). */
export function renderHistory(events: readonly HistoryEvent__Output[], options: { width?: number } = {}): string {
  const rows = events.map(cells);
  // The other columns' widths as formatTable will make them (their caps applied); DETAIL gets the rest.
  const widths = COLUMNS.slice(0, -1).map((c, i) =>
    Math.max(c.header.length, ...rows.map((r) => Math.min([...r[i]].length, c.maxWidth ?? Infinity))),
  );
  return formatTable(fitDetail(COLUMNS, widths, options.width), rows, { empty: 'no events' });
}

/**
 * Streams events after `afterSeq` until interrupted (resolves 0). Subscribes again after the last event
 * seen when the stream breaks because the coordinator went away or ended it; rejects with an RpcError
 * for any other failure (the coordinator refused the call).
 */
function follow(
  ctx: Context,
  filter: HistoryFilter,
  afterSeq: number,
  show: (e: HistoryEvent__Output) => void,
): Promise<number> {
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
      const c = ctx
        .clients()
        .admin.WatchHistory({ host: filter.host, afterSeq: lastSeq }, new grpc.Metadata({ waitForReady }));
      call = c;
      let ended = false;
      c.on('data', (e: HistoryEvent__Output) => {
        if (e.seq <= lastSeq) return; // already printed (a replay after subscribing again)
        lastSeq = e.seq;
        if (matches(filter, e)) show(e);
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

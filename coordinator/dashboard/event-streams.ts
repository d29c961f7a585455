/**
 * /events: the dashboard's server-sent events. Each committed history record is a message whose id is its
 * seq (a reconnecting EventSource says where it was, and is sent what it missed); each host load sample and
 * budget change (load-ring.ts) is an `event: load` or `event: budget` message without an id. One subscription
 * serves every reader: a message is serialised once, however many pages are open. The readers are capped
 * (http.maxEventStreams) and so is what each may leave unread, so that pages never hold the event loop or
 * the coordinator's memory.
 */
import type * as http from 'node:http';
import type { Logger } from '../../common/util/log';
import type { HttpReply, HttpStream, Route } from '../http/http-listener';
import type { AdminReads } from '../rpc/admin-reads';
import type { Coordinator } from '../service/coordinator';
import type { HistoryQuery, HistoryRecord } from '../store/store';
import type { LoadRing, LoadRingEntry } from './load-ring';

/** Bytes a reader may leave unread before its stream is ended (its EventSource reconnects and catches up). */
export const MAX_UNREAD_BYTES = 1_024 * 1_024;
/** Events a reconnecting reader is sent of what it missed; an older gap is the history view's to show. */
export const MAX_CATCH_UP = 1_000;
/** A comment line this often keeps proxies and the browser from taking a quiet stream for a dead one. */
const HEARTBEAT_MS = 15_000;

export interface EventStreamsOptions {
  reads: Pick<AdminReads, 'optionalHost' | 'historyEvent'>;
  /** `history` may answer now or later: the store is becoming asynchronous (the cluster's). */
  coordinator: Pick<Coordinator, 'onCommitted'> & {
    history(query: HistoryQuery): readonly HistoryRecord[] | Promise<readonly HistoryRecord[]>;
  };
  loads: Pick<LoadRing, 'subscribe'>;
  /** Readers at once (http.maxEventStreams); one more is answered 503. */
  maxStreams: number;
  log: Logger;
}

interface Reader {
  response: http.ServerResponse;
  /** Only this host's messages; undefined: every host's. */
  host?: string;
  /** The seq of the last history record sent. */
  last: number;
  /** Messages that arrived while it was being sent what it missed, in order; undefined once caught up. */
  held?: { seq: number; text: string }[];
}

export class EventStreams {
  private readonly readers = new Set<Reader>();
  private readonly unsubscribe: (() => void)[];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly o: EventStreamsOptions) {
    this.unsubscribe = [
      o.coordinator.onCommitted((_events, records) => this.committed(records)),
      o.loads.subscribe((entry) => this.loadEntry(entry)),
    ];
    this.heartbeat = setInterval(() => {
      for (const reader of this.readers) this.write(reader, ': keepalive\n\n');
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get open(): number {
    return this.readers.size;
  }

  /** The /events route: `?host=H` for one host's messages. @throws HostNotFoundError, InvalidArgumentError */
  readonly route: Route = (request): HttpStream | HttpReply => {
    const query = new URL(request.url ?? '/', 'http://x').searchParams;
    const host = this.o.reads.optionalHost(query.get('host') ?? '');
    if (this.readers.size >= this.o.maxStreams) {
      return {
        status: 503,
        contentType: 'text/plain; charset=utf-8',
        body: `all ${this.o.maxStreams} dashboard event streams are open (http.maxEventStreams in coordinator.yaml): close a dashboard page or raise the limit\n`,
      };
    }
    const lastSeen = Number(request.headers['last-event-id'] ?? 0) || 0;
    return {
      status: 200,
      contentType: 'text/event-stream; charset=utf-8',
      open: (response) => void this.attach({ response, host, last: lastSeen }),
    };
  };

  close(): void {
    clearInterval(this.heartbeat);
    for (const u of this.unsubscribe) u();
  }

  private async attach(reader: Reader): Promise<void> {
    this.readers.add(reader);
    reader.response.on('close', () => this.readers.delete(reader));
    this.write(reader, 'retry: 2000\n\n');
    if (reader.last === 0) return;
    reader.held = [];
    try {
      const missed = await this.o.coordinator.history({
        host: reader.host,
        limit: MAX_CATCH_UP,
        afterSeq: reader.last,
      });
      for (const r of missed) this.send(reader, r.seq, this.message(r));
    } catch (e) {
      this.o.log.warn('could not send a reconnecting dashboard what it missed', { error: e as Error });
    }
    const held = reader.held;
    reader.held = undefined;
    for (const m of held) this.send(reader, m.seq, m.text);
  }

  private message(r: HistoryRecord): string {
    return `id: ${r.seq}\ndata: ${JSON.stringify(this.o.reads.historyEvent(r))}\n\n`;
  }

  private committed(records: readonly HistoryRecord[]): void {
    if (this.readers.size === 0) return;
    for (const r of records) {
      const text = this.message(r);
      for (const reader of this.readers) {
        if (reader.host && reader.host !== r.host) continue;
        if (reader.held) reader.held.push({ seq: r.seq, text });
        else this.send(reader, r.seq, text);
      }
    }
  }

  private loadEntry(entry: LoadRingEntry): void {
    if (this.readers.size === 0) return;
    const [name, value] = 'sample' in entry ? ['load', entry.sample] : ['budget', entry.mark];
    const text = `event: ${name}\ndata: ${JSON.stringify(value)}\n\n`;
    for (const reader of this.readers) if (!reader.host || reader.host === value.host) this.write(reader, text);
  }

  private send(reader: Reader, seq: number, text: string): void {
    if (seq <= reader.last) return;
    reader.last = seq;
    this.write(reader, text);
  }

  private write(reader: Reader, text: string): void {
    const { response } = reader;
    if (response.writableEnded) return;
    // The socket's own buffer is the reader's queue: past the bound it is not reading, and is let go.
    if (response.writableLength > MAX_UNREAD_BYTES) {
      this.o.log.warn('ending a dashboard event stream whose reader fell behind', { last: reader.last });
      this.readers.delete(reader);
      response.end();
      return;
    }
    response.write(text);
  }
}

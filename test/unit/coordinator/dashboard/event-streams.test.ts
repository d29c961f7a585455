/**
 * /events' readers: one serialisation per committed record whatever their number, each host's messages to
 * its readers, the cap on readers, the bound on what one may leave unread, and a reconnecting reader's
 * catch-up in order. Over a hand-written coordinator and response; the real LoadRing.
 */
import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import type * as http from 'node:http';
import { createLogger } from '../../../../common/util/log';
import { EventStreams, MAX_UNREAD_BYTES } from '../../../../coordinator/dashboard/event-streams';
import { LoadRing } from '../../../../coordinator/dashboard/load-ring';
import type { HttpReply, HttpStream } from '../../../../coordinator/http/http-listener';
import type { CommitListener } from '../../../../coordinator/service/coordinator';
import type { HistoryQuery, HistoryRecord } from '../../../../coordinator/store/store';

/** What a reader's socket was sent; `unread` plays the bytes its reader has not taken yet. */
class FakeResponse extends EventEmitter {
  text = '';
  unread = 0;
  writableEnded = false;
  get writableLength(): number {
    return this.unread;
  }
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
  end(): void {
    this.writableEnded = true;
    this.emit('close');
  }
}

const record = (seq: number, host = 'h1'): HistoryRecord => ({
  seq,
  at: 1_000 + seq,
  type: 'GRANTED',
  host,
  vm: `vm${seq}`,
  job: 'nightly',
  kind: 'GUEST',
  tokenId: `t${seq}`,
  fencing: seq,
  requestId: `r${seq}`,
  detail: '',
});

function setup(maxStreams = 10) {
  const listeners: CommitListener[] = [];
  let stored: HistoryRecord[] = [];
  let release: () => void = () => {};
  let historyGate = Promise.resolve();
  let serialised = 0;
  const loads = new LoadRing();
  const streams = new EventStreams({
    reads: {
      optionalHost: (h) => (h === '' ? undefined : h),
      historyEvent: (r) => {
        serialised++;
        return { seq: r.seq, host: r.host } as never;
      },
    },
    coordinator: {
      onCommitted: (l) => {
        listeners.push(l);
        return () => {};
      },
      history: async (q: HistoryQuery) => {
        await historyGate;
        return stored.filter((r) => r.seq > (q.afterSeq ?? 0) && (!q.host || r.host === q.host));
      },
    },
    loads,
    maxStreams,
    log: createLogger({ level: 'silent' }),
  });
  const open = (query = '', lastEventId?: number) => {
    const reply = streams.route({
      url: `/events${query}`,
      headers: lastEventId ? { 'last-event-id': String(lastEventId) } : {},
    } as http.IncomingMessage) as HttpStream | HttpReply;
    if (!('open' in reply)) return { reply, response: undefined };
    const response = new FakeResponse();
    reply.open(response as unknown as http.ServerResponse);
    return { reply, response };
  };
  return {
    streams,
    loads,
    open,
    commit: (records: HistoryRecord[]) => listeners.forEach((l) => l([], records)),
    store: (records: HistoryRecord[]) => (stored = records),
    holdHistory: () => (historyGate = new Promise((resolve) => (release = resolve))),
    releaseHistory: () => release(),
    serialised: () => serialised,
  };
}

const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('dashboard event streams', () => {
  it("serialises each record once for every reader, and sends each reader its host's records only", () => {
    const s = setup();
    const all = [s.open(), s.open(), s.open()].map((o) => o.response!);
    const h2 = s.open('?host=h2').response!;
    s.commit([record(1), record(2, 'h2')]);
    assert.equal(s.serialised(), 2);
    for (const r of all) assert.deepEqual(ids(r.text), [1, 2]);
    assert.deepEqual(ids(h2.text), [2]);
    assert.match(all[0].text, /^retry: 2000\n\nid: 1\ndata: \{"seq":1,"host":"h1"\}\n\n/);
  });

  it('sends load samples and budget changes as named events without an id, to their host only', () => {
    const s = setup();
    const h1 = s.open('?host=h1').response!;
    const h2 = s.open('?host=h2').response!;
    s.loads.addSample('h1', { cpuPercent: 12, ioBytesPerSec: 3, at: 5 });
    s.loads.addMark({ host: 'h1', vm: 'v', job: 'j', tokenId: 't', atUnixMs: 6, level: 'paused', reason: 'busy' });
    assert.equal(
      h1.text,
      'retry: 2000\n\n' +
        'event: load\ndata: {"host":"h1","atUnixMs":5,"cpuPercent":12,"ioBytesPerSec":3}\n\n' +
        'event: budget\ndata: {"host":"h1","vm":"v","job":"j","tokenId":"t","atUnixMs":6,"level":"paused","reason":"busy"}\n\n',
    );
    assert.equal(h2.text, 'retry: 2000\n\n');
  });

  it('answers a reader past maxStreams with 503 naming the key, and serves again once a reader leaves', () => {
    const s = setup(2);
    const first = s.open().response!;
    s.open();
    const refused = s.open().reply as HttpReply;
    assert.equal(refused.status, 503);
    assert.match(refused.body, /all 2 dashboard event streams are open \(http\.maxEventStreams in coordinator\.yaml\)/);
    first.emit('close');
    assert.equal(s.streams.open, 1);
    assert.equal(s.open().reply.status, 200);
  });

  it('ends the stream of a reader that leaves more than the bound unread, and sends it nothing more', () => {
    const s = setup();
    const slow = s.open().response!;
    const fast = s.open().response!;
    slow.unread = MAX_UNREAD_BYTES + 1;
    s.commit([record(1)]);
    assert.equal(slow.writableEnded, true);
    assert.deepEqual(ids(slow.text), []);
    assert.deepEqual(ids(fast.text), [1]);
    assert.equal(s.streams.open, 1);
  });

  it('sends a reconnecting reader what it missed, then what committed meanwhile, in order and once each', async () => {
    const s = setup();
    s.store([record(1), record(2), record(3)]);
    s.holdHistory();
    const { response } = s.open('', 1);
    // Committed while its catch-up is being read: 3 is in both, 4 only here.
    s.commit([record(3), record(4)]);
    s.store([record(1), record(2), record(3), record(4)]);
    s.releaseHistory();
    await tick();
    await tick();
    assert.deepEqual(ids(response!.text), [2, 3, 4]);
    s.commit([record(5)]);
    assert.deepEqual(ids(response!.text), [2, 3, 4, 5]);
  });
});

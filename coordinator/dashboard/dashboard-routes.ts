/**
 * The web dashboard's routes on the coordinator's HTTP listener: the page and its bundled assets (built into
 * dist/dashboard by scripts/build-dashboard.js), read-only JSON endpoints that answer from the same functions
 * as AdminService (rpc/admin-reads.ts), and /events, the committed history as server-sent events. Whoever
 * the listener admits may read; nothing here changes anything (docs/dashboard.md).
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import type { Logger } from '../../common/util/log';
import { InvalidArgumentError } from '../domain/errors';
import type { HttpReply, HttpStream, Route } from '../http/http-listener';
import type { AdminReads } from '../rpc/admin-reads';
import { httpStatusOf } from '../rpc/status';
import type { Coordinator } from '../service/coordinator';
import type { HistoryRecord } from '../store/store';
import * as validate from '../rpc/validate';
import type * as v1 from '../../proto/generated/headroom/v1';

/** The page's history view shows at most this many events per request: a big answer would hold the event loop. */
export const MAX_PAGE_HISTORY = 1_000;
const DEFAULT_PAGE_HISTORY = 200;
/** Events a slow reader of /events may leave unread before the stream ends (its EventSource reconnects). */
export const MAX_EVENT_BACKLOG = 1_000;
/** A comment line this often keeps proxies and the browser from taking a quiet stream for a dead one. */
const HEARTBEAT_MS = 15_000;

/** Where the build puts the page: dist/dashboard, beside dist/coordinator. */
export const DEFAULT_STATIC_DIR = path.join(__dirname, '..', '..', 'dashboard');

const ASSETS: Record<string, { file: string; contentType: string }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/static/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/static/style.css': { file: 'style.css', contentType: 'text/css; charset=utf-8' },
};

export interface DashboardOptions {
  reads: AdminReads;
  coordinator: Pick<Coordinator, 'watchHistory'>;
  log: Logger;
  staticDir?: string;
}

const json = (status: number, value: unknown): HttpReply => ({
  status,
  contentType: 'application/json; charset=utf-8',
  body: JSON.stringify(value),
});

/** A known domain error is answered with its HTTP status and message as JSON; anything else is the listener's 500. */
function answeringErrors(route: Route): Route {
  return async (request) => {
    try {
      return await route(request);
    } catch (e) {
      const status = httpStatusOf(e);
      if (status === undefined) throw e;
      return json(status, { error: (e as Error).message });
    }
  };
}

const jsonRoute = (answer: (query: URLSearchParams) => unknown): Route =>
  answeringErrors(async (request) => json(200, await answer(new URL(request.url ?? '/', 'http://x').searchParams)));

/** A non-negative integer query parameter; 0 when absent. @throws InvalidArgumentError naming it. */
function intParam(query: URLSearchParams, name: string): number {
  const value = query.get(name);
  if (value === null || value === '') return 0;
  if (!/^\d{1,16}$/.test(value)) throw new InvalidArgumentError(name, `must be a non-negative integer, got ${value}`);
  return Number(value);
}

function historyRequest(query: URLSearchParams): v1.ListHistoryRequest__Output {
  return {
    host: query.get('host') ?? '',
    vm: query.get('vm') ?? '',
    limit: validate.limit('limit', intParam(query, 'limit'), DEFAULT_PAGE_HISTORY, MAX_PAGE_HISTORY),
    afterSeq: intParam(query, 'afterSeq'),
    types: query.getAll('type') as v1.HistoryEventType__Output[],
    sinceUnixMs: intParam(query, 'since'),
  };
}

/** /events: each committed history record (of `host`, when given) as an SSE message whose id is its seq. */
function eventsRoute({ reads, coordinator, log }: DashboardOptions): Route {
  return (request): HttpStream => {
    const query = new URL(request.url ?? '/', 'http://x').searchParams;
    const host = reads.optionalHost(query.get('host') ?? '');
    // An EventSource that reconnects says where it was: it gets what it missed, up to the page's cap.
    const lastSeen = Number(request.headers['last-event-id'] ?? 0) || 0;
    return {
      status: 200,
      contentType: 'text/event-stream; charset=utf-8',
      open: (response: http.ServerResponse) => {
        let last = lastSeen;
        const send = (records: readonly HistoryRecord[]) => {
          for (const r of records) {
            last = r.seq;
            response.write(`id: ${r.seq}\ndata: ${JSON.stringify(reads.historyEvent(r))}\n\n`);
          }
          // The socket's own buffer is the backlog: past the cap the reader is not reading, and is let go.
          if (response.writableLength > MAX_EVENT_BACKLOG * 1_024) {
            log.warn('ending a dashboard event stream whose reader fell behind', { last });
            response.end();
          }
        };
        response.write('retry: 2000\n\n');
        // A new page reads the history itself (/api/history): it follows from the newest event on.
        const afterSeq = lastSeen > 0 ? lastSeen : undefined;
        const unsubscribe = coordinator.watchHistory(
          { host, limit: MAX_PAGE_HISTORY, afterSeq },
          send,
          (e: unknown) => {
            log.warn('a dashboard event stream could not catch up', { error: e as Error });
            response.end();
          },
        );
        const heartbeat = setInterval(() => response.write(': keepalive\n\n'), HEARTBEAT_MS);
        response.on('close', () => {
          clearInterval(heartbeat);
          unsubscribe();
        });
      },
    };
  };
}

/** The dashboard's routes, for the listener's table. The page's files are read once, at the first request. */
export function dashboardRoutes(options: DashboardOptions): Map<string, Route> {
  const { reads } = options;
  const dir = options.staticDir ?? DEFAULT_STATIC_DIR;
  const cache = new Map<string, string>();
  const asset =
    (file: string, contentType: string): Route =>
    () => {
      if (!cache.has(file)) {
        const full = path.join(dir, file);
        if (!fs.existsSync(full))
          return { status: 503, contentType: 'text/plain; charset=utf-8', body: `${full} is missing: npm run build\n` };
        cache.set(file, fs.readFileSync(full, 'utf8'));
      }
      return { status: 200, contentType, body: cache.get(file)! };
    };
  return new Map<string, Route>([
    ...Object.entries(ASSETS).map(([p, a]): [string, Route] => [p, asset(a.file, a.contentType)]),
    ['/api/hosts', jsonRoute((q) => ({ hosts: reads.hosts(), agents: reads.agents(q.get('host') ?? '') }))],
    [
      '/api/plan',
      jsonRoute((q) =>
        reads.plan({ host: q.get('host') ?? '', horizonMs: intParam(q, 'horizonMs'), target: q.get('target') ?? '' }),
      ),
    ],
    ['/api/history', jsonRoute(async (q) => ({ events: await reads.history(historyRequest(q)) }))],
    ['/api/tokens', jsonRoute((q) => reads.tokens(q.get('host') ?? ''))],
    ['/events', answeringErrors(eventsRoute(options))],
  ]);
}

/**
 * The web dashboard's routes on the coordinator's HTTP listener: the page and its bundled assets (built into
 * dist/dashboard by scripts/build-dashboard.js), read-only JSON endpoints that answer from the same functions
 * as AdminService (rpc/admin-reads.ts), one VM's view (vm-view.ts), the hosts' recent load (load-ring.ts), and
 * /events, the committed history, load samples and budget changes as server-sent events (event-streams.ts).
 * Whoever the listener admits may read; nothing here changes anything (docs/dashboard.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/util/log';
import { InvalidArgumentError } from '../domain/errors';
import type { HttpReply, Route } from '../http/http-listener';
import type { AdminReads } from '../rpc/admin-reads';
import { httpStatusOf } from '../rpc/status';
import type { Coordinator } from '../service/coordinator';
import * as validate from '../rpc/validate';
import type * as v1 from '../../proto/generated/headroom/v1';
import { EventStreams } from './event-streams';
import type { LoadRing } from './load-ring';

/** The page's history view shows at most this many events per request: a big answer would hold the event loop. */
export const MAX_PAGE_HISTORY = 1_000;
const DEFAULT_PAGE_HISTORY = 200;

/** Where the build puts the page: dist/dashboard, beside dist/coordinator. */
export const DEFAULT_STATIC_DIR = path.join(__dirname, '..', '..', 'dashboard');

const ASSETS: Record<string, { file: string; contentType: string }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/static/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/static/style.css': { file: 'style.css', contentType: 'text/css; charset=utf-8' },
};

export interface DashboardOptions {
  reads: AdminReads;
  coordinator: Pick<Coordinator, 'onCommitted' | 'history'>;
  /** The hosts' recent load and budget changes (the load strip). */
  loads: LoadRing;
  /** One VM's jobs, runs and backup chains (vm-view.ts). */
  vm: (vm: string) => Promise<unknown>;
  /** A host's runs since a time, or every host's (host-overview.ts). */
  overview: (sinceUnixMs: number, host?: string) => Promise<unknown>;
  /** Event streams open at once (http.maxEventStreams). */
  maxEventStreams: number;
  log: Logger;
  staticDir?: string;
}

export interface Dashboard {
  routes: Map<string, Route>;
  /** Event streams open now. */
  openStreams(): number;
  close(): void;
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

/** The dashboard's routes, for the listener's table. The page's files are read once, at the first request. */
export function dashboard(options: DashboardOptions): Dashboard {
  const { reads, loads } = options;
  const streams = new EventStreams({
    reads,
    coordinator: options.coordinator,
    loads,
    maxStreams: options.maxEventStreams,
    log: options.log,
  });
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
  const routes = new Map<string, Route>([
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
    ['/api/load', jsonRoute((q) => loads.of(reads.knownHost(q.get('host') ?? '')))],
    ['/api/vm', jsonRoute((q) => options.vm(q.get('vm') ?? ''))],
    ['/api/runs', jsonRoute((q) => options.overview(intParam(q, 'since'), reads.optionalHost(q.get('host') ?? '')))],
    ['/events', answeringErrors(streams.route)],
  ]);
  return { routes, openStreams: () => streams.open, close: () => streams.close() };
}

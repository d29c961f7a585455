/**
 * The routes the coordinator serves over HTTP today: /metrics (Prometheus exposition) and /healthz (the
 * same verdict as grpc.health.v1). The dashboard adds its own to the table server.ts builds.
 */
import type { HttpReply, Route } from './http-listener';

/** 200 `SERVING`, or 503 `NOT_SERVING: why` while `problem()` names one (the store cannot commit, stopping). */
export function healthRoute(problem: () => string | undefined): Route {
  return (): HttpReply => {
    const why = problem();
    return {
      status: why === undefined ? 200 : 503,
      contentType: 'text/plain; charset=utf-8',
      body: why === undefined ? 'SERVING\n' : `NOT_SERVING: ${why}\n`,
    };
  };
}

export function metricsRoute(scrape: () => Promise<{ contentType: string; body: string }>): Route {
  return async (): Promise<HttpReply> => {
    const { contentType, body } = await scrape();
    return { status: 200, contentType, body };
  };
}

/**
 * The parts of `npm run bench:penalty` that measure the foreground: an open-loop HTTP load generator that
 * times every request, and percentiles.
 */
import * as http from 'node:http';

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarise(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}

/**
 * Sends GET requests at a fixed rate, whatever the answers do (open loop: a slow server does not slow the
 * offered load), and records each one's latency in ms (request sent → last byte received).
 */
export class OpenLoopLoad {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private timer: NodeJS.Timeout | undefined;
  private latencies: number[] = [];
  private errors = 0;

  constructor(
    private readonly port: number,
    private readonly ratePerSec: number,
  ) {}

  start(): void {
    const began = performance.now();
    let sent = 0;
    // Ticks of 5 ms, each sending what is due by now: the rate holds even when a tick comes late.
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - began) / 1000) * this.ratePerSec);
      for (; sent < due; sent++) this.send();
    }, 5);
  }

  /** The latencies recorded since the last call, and the errors. */
  take(): { latenciesMs: number[]; errors: number } {
    const out = { latenciesMs: this.latencies, errors: this.errors };
    this.latencies = [];
    this.errors = 0;
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
    this.agent.destroy();
  }

  private send(): void {
    const t0 = performance.now();
    const req = http.get({ host: '127.0.0.1', port: this.port, path: '/', agent: this.agent }, (res) => {
      res.resume();
      res.on('end', () => this.latencies.push(performance.now() - t0));
      res.on('error', () => this.errors++);
    });
    req.on('error', () => this.errors++);
  }
}

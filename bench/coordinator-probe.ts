/**
 * Preloaded into the coordinator by the grant benchmark (NODE_OPTIONS=--require …) to see inside it
 * without changing its code. Between two SIGUSR2 signals (one measured window) it records:
 *  - every store commit: how long the synchronous SQLite transaction (and its fsync) blocked the event
 *    loop, and how many events it carried (the group-commit batch);
 *  - each Acquire inside the coordinator: from the handler's call into Coordinator.acquire to GRANTED
 *    handed back (lessor + group commit; gRPC decode, encode and the socket are outside it);
 *  - the coordinator's event-loop delay, and the heap still in use after a full GC at the window's end;
 *  - with HEADROOM_BENCH_CPU_PROF=1, a V8 CPU profile (Node refuses --cpu-prof in NODE_OPTIONS).
 * The second signal writes `<n>.probe.json` (and `<n>.cpuprofile`) into HEADROOM_BENCH_PROBE_DIR. The
 * in-process inspector session answers synchronously, so the files exist when the handler returns.
 */
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

export interface ProbeWindow {
  wallMs: number;
  commits: number;
  /** Sum of commit durations: the share of the window the event loop was blocked committing. */
  commitTotalMs: number;
  commitMs: { p50: number; p90: number; p99: number; max: number };
  eventsPerCommit: { mean: number; max: number };
  grantsPerCommit: { mean: number; max: number };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  /** Coordinator.acquire → waiter.granted, ms. */
  serverAcquireMs: { count: number; p50: number; p99: number; max: number };
  /** V8 heap in use after a forced full GC at the window's end: what the coordinator really retains. */
  heapUsedAfterGcBytes: number;
  /** Garbage-collection pauses during the window. */
  gcPauses: { count: number; totalMs: number; maxMs: number };
}

const dir = process.env.HEADROOM_BENCH_PROBE_DIR;
if (dir) {
  const profile = process.env.HEADROOM_BENCH_CPU_PROF === '1';
  const session = profile ? new inspector.Session() : undefined;
  if (session) {
    session.connect();
    session.post('Profiler.enable');
    // 250 µs between samples: fine enough for sub-millisecond calls, cheap enough not to skew them much.
    session.post('Profiler.setSamplingInterval', { interval: 250 });
  }

  let recording = false;
  let started = 0;
  let durationsUs: number[] = [];
  let events: number[] = [];
  let grants: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });

  // The coordinator's compiled store, the very module main.js will load (same path, same module cache).
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  let acquireUs: number[] = [];
  let gcPauses = { count: 0, totalMs: 0, maxMs: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcPauses.count++;
      gcPauses.totalMs += e.duration;
      gcPauses.maxMs = Math.max(gcPauses.maxMs, e.duration);
    }
  });

  // Coordinator.acquire resolves once the outcome is durable; a grant reaches the waiter after the commit.
  const coordinatorModule = require(path.resolve(__dirname, '..', 'coordinator', 'service', 'coordinator.js'));
  const originalAcquire = coordinatorModule.Coordinator.prototype.acquire;
  coordinatorModule.Coordinator.prototype.acquire = function (
    this: unknown,
    input: unknown,
    waiter: { granted(l: unknown): void },
  ) {
    if (!recording) return originalAcquire.call(this, input, waiter);
    const t0 = process.hrtime.bigint();
    const timed = {
      ...waiter,
      granted: (lease: unknown) => {
        if (recording) acquireUs.push(Number(process.hrtime.bigint() - t0) / 1000);
        waiter.granted(lease);
      },
    };
    return originalAcquire.call(this, input, timed);
  };

  const storeModule = require(path.resolve(__dirname, '..', 'coordinator', 'store', 'sqlite-store.js'));
  const original = storeModule.SqliteStore.prototype.commit;
  storeModule.SqliteStore.prototype.commit = function (this: unknown, batch: { type: string }[]) {
    if (!recording || batch.length === 0) return original.call(this, batch);
    const t0 = process.hrtime.bigint();
    try {
      return original.call(this, batch);
    } finally {
      durationsUs.push(Number(process.hrtime.bigint() - t0) / 1000);
      events.push(batch.length);
      grants.push(batch.filter((e) => e.type === 'granted').length);
    }
  };

  let written = 0;
  process.on('SIGUSR2', () => {
    if (!recording) {
      durationsUs = [];
      events = [];
      grants = [];
      acquireUs = [];
      gcPauses = { count: 0, totalMs: 0, maxMs: 0 };
      gcObserver.observe({ entryTypes: ['gc'] });
      loop.reset();
      loop.enable();
      session?.post('Profiler.start');
      started = performance.now();
      recording = true;
      return;
    }
    recording = false;
    loop.disable();
    const n = ++written;
    const pct = (values: number[]) => {
      const v = Float64Array.from(values).sort();
      const at = (p: number) => (v.length ? v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))] / 1000 : 0);
      return { count: v.length, p50: at(50), p90: at(90), p99: at(99), max: v.length ? v[v.length - 1] / 1000 : 0 };
    };
    const commit = pct(durationsUs);
    const acquire = pct(acquireUs);
    const wallMs = performance.now() - started;
    gcObserver.disconnect();
    gc();
    const mean = (a: number[]) => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : 0);
    const window: ProbeWindow = {
      wallMs,
      commits: commit.count,
      commitTotalMs: durationsUs.reduce((s, v) => s + v, 0) / 1000,
      commitMs: { p50: commit.p50, p90: commit.p90, p99: commit.p99, max: commit.max },
      eventsPerCommit: { mean: mean(events), max: Math.max(0, ...events) },
      grantsPerCommit: { mean: mean(grants), max: Math.max(0, ...grants) },
      eventLoopDelayMs: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      serverAcquireMs: { count: acquire.count, p50: acquire.p50, p99: acquire.p99, max: acquire.max },
      heapUsedAfterGcBytes: process.memoryUsage().heapUsed,
      gcPauses,
    };
    const write = (file: string, text: string) => {
      fs.writeFileSync(`${file}.tmp`, text);
      fs.renameSync(`${file}.tmp`, file);
    };
    session?.post('Profiler.stop', (err, result) => {
      if (!err) write(path.join(dir, `${n}.cpuprofile`), JSON.stringify(result.profile));
    });
    write(path.join(dir, `${n}.probe.json`), JSON.stringify(window));
  });
}

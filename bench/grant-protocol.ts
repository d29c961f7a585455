/**
 * The messages between the grant benchmark's driver (grant.ts) and its client processes
 * (grant-worker.ts), over the fork() IPC channel. Times that both sides must agree on are wall-clock
 * Unix milliseconds (the processes share one machine clock); latencies are measured inside one process
 * with process.hrtime and travel as microseconds.
 */

/** One simulated client: its own gRPC channel, asking GUEST tokens for its own VM on one host. */
export interface ClientSpec {
  index: number;
  host: string;
  vm: string;
}

export interface PhaseSpec {
  kind: 'open' | 'closed';
  /** Short tag that makes request ids unique across phases. */
  tag: string;
  /** When the worker starts issuing cycles (Unix ms). */
  startAtMs: number;
  /** Cycles before startAtMs + warmupMs are run but not measured. */
  warmupMs: number;
  /** Length of the measured window, which ends the phase: no cycle starts after it. */
  durationMs: number;
  /** Open loop only: this worker's share of the total rate, in cycles per second. */
  ratePerSec: number;
  /** Open loop only: delay of this worker's first tick, so that the workers' ticks interleave evenly. */
  offsetMs: number;
  /** How long cycles still in flight at the end may take to finish before the worker reports anyway. */
  drainMs: number;
}

export type DriverMessage =
  { type: 'connect'; address: string; clients: ClientSpec[] } | { type: 'run'; phase: PhaseSpec } | { type: 'close' };

export interface GcPauses {
  count: number;
  totalMs: number;
  maxMs: number;
}

export interface ErrorCount {
  /** gRPC status name, `DENIED:<reason>`, or the error's message. */
  what: string;
  count: number;
}

export interface WorkerPhaseResult {
  /** Acquire latency (call start → GRANTED received) of every measured cycle, in µs. */
  acquireUs: number[];
  /** Release latency (call start → response) of every measured cycle, in µs. */
  releaseUs: number[];
  /** Cycles started inside the measured window (open loop: the achieved schedule). */
  startedInWindow: number;
  /** GRANTED updates received inside the measured window. */
  grantsInWindow: number;
  /** GRANTED updates received inside the window, per whole second from its start. */
  grantsPerSecond: number[];
  /** Open loop: ticks at which every client of this worker was still busy, so no cycle started. */
  skippedTicks: number;
  /** Open loop: how late ticks fired after their scheduled time, p99 and max, in µs. */
  scheduleLagP99Us: number;
  scheduleLagMaxUs: number;
  /** This worker's event-loop delay during the window (ms): a busy client inflates measured latency. */
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
  /** Garbage-collection pauses of this worker during the window. */
  gcPauses: GcPauses;
  /** Errors during the whole phase, warm-up included. */
  errors: ErrorCount[];
  /** Every token id this worker was granted during the whole phase (warm-up and drain included). */
  tokenIds: string[];
  /** Releases that succeeded during the whole phase. */
  released: number;
  /** Cycles still unfinished when the drain time ran out. */
  unfinished: number;
}

export type WorkerMessage =
  | { type: 'connected'; clients: number; ms: number }
  | { type: 'result'; result: WorkerPhaseResult }
  | { type: 'failed'; message: string };

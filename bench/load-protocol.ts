/**
 * The messages between bench:load's driver (load.ts) and its client processes (load-worker.ts), over
 * the fork() IPC channel. Shared times are wall-clock Unix ms; latencies travel as µs.
 */

/** One simulated agent: its own gRPC channel (own TCP connection), session and VM, on one host. */
export interface AgentSpec {
  vm: string;
  host: string;
}

export interface ChurnSpec {
  /** When the worker starts its token cycles (Unix ms); its load reports run from the hello on. */
  startAtMs: number;
  /** Cycles before startAtMs + warmupMs run but are not measured. */
  warmupMs: number;
  durationMs: number;
  /** This worker's share of the acquire/renew/release cycles per second. */
  ratePerSec: number;
  /** Delay of this worker's first tick, so that the workers' ticks interleave evenly. */
  offsetMs: number;
}

export type LoadDriverMessage =
  { type: 'connect'; address: string; agents: AgentSpec[] } | { type: 'churn'; churn: ChurnSpec } | { type: 'close' };

export interface ErrorCount {
  what: string;
  count: number;
}

export interface LoadWorkerResult {
  /** Acquire (call start → GRANTED) of each cycle started in the measured window, µs. */
  acquireUs: number[];
  renewUs: number[];
  releaseUs: number[];
  /** Cycles completed (acquire, renew, release), warm-up included. */
  cycles: number;
  /** Ticks at which every agent of this worker was still in a cycle, so none started. */
  skippedTicks: number;
  /** Load reports sent during the whole run, and sessions still open at its end. */
  loadReports: number;
  sessionsOpen: number;
  /** Commands the coordinator pushed to the sessions (grant notices, budgets). */
  commands: number;
  errors: ErrorCount[];
}

export type LoadWorkerMessage =
  | { type: 'connected'; sessions: number; ms: number }
  | { type: 'result'; result: LoadWorkerResult }
  | { type: 'failed'; message: string };

/**
 * How a bench that starts a coordinator and client processes takes them down: gracefully when it ends or
 * is interrupted, and by SIGKILL as a last resort, so that nothing it started outlives it.
 */
import type { RunningCoordinator } from '../test/helpers/coordinator-process';

/** SIGTERM for a graceful stop; SIGKILL if it has not stopped in 8 s. */
export async function stopCoordinator(c: RunningCoordinator): Promise<void> {
  const timer = setTimeout(() => void c.kill(), 8_000);
  await c.stop();
  clearTimeout(timer);
}

export interface TeardownOptions {
  /** Stops everything the run started; safe to call twice. */
  cleanup(): Promise<void>;
  /** What is running now, for the last resort. */
  running(): { pool?: { killAll(): void }; coordinator?: RunningCoordinator };
  progress(line: string): void;
}

/**
 * Ctrl-C or a kill: clean up and exit 130. Any other exit: kill what is still running. Says whether a
 * signal came: the run's own error handler then stays quiet, since the workers' deaths (EPIPE, closed
 * channels) are no news and the exit is the signal handler's.
 */
export function tearDownOnExit(o: TeardownOptions): { interrupted(): boolean } {
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      o.progress(`${signal}: stopping the coordinator and client processes`);
      o.cleanup().finally(() => process.exit(130));
    });
  }
  process.on('exit', () => {
    const { pool, coordinator } = o.running();
    pool?.killAll();
    if (coordinator && coordinator.process.exitCode === null) coordinator.process.kill('SIGKILL');
  });
  return { interrupted: () => interrupted };
}

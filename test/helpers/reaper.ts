/**
 * What a test or benchmark starts (guests, etcd members, network namespaces) must not outlive its process:
 * each registers how to stop it, synchronously, and the stops run when the process exits or is
 * interrupted, whatever the after hooks managed to do.
 */
const stops = new Set<() => void>();
let installed = false;

function stopAll(): void {
  for (const stop of [...stops]) {
    try {
      stop();
    } catch {
      // Best effort at exit: it may already be gone.
    }
  }
  stops.clear();
}

/** Registers `stop`; returns the function that unregisters it (call it once the thing is stopped). */
export function reapAtExit(stop: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', stopAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        stopAll();
        process.kill(process.pid, signal);
      });
    }
  }
  stops.add(stop);
  return () => stops.delete(stop);
}

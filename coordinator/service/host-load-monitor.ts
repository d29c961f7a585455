/**
 * Samples the coordinator's own host (CPU, disk I/O) at its policy's report interval and hands each sample
 * to the start gate, so that no backup starts on a host without headroom (domain/start-gate.ts): directly
 * on a single host, through etcd in a cluster (cluster/host-loads.ts). The adapter between the load
 * collector and where the samples go: all it decides is when to sample.
 */
import type { Clock } from '../../common/util/clock';
import { type LoadCollector, waitFigures } from '../../common/backup-run/load-collector';
import type { Logger } from '../../common/util/log';
import type { LoadView } from '../domain/start-gate';

export interface HostLoadMonitorDeps {
  /** Takes each sample; what it throws is logged, and sampling goes on. */
  sink(load: LoadView): Promise<void>;
  /** How long to wait before the next sample: the host's report interval. */
  intervalMs(): number;
  collector: LoadCollector & { prime?(): void };
  clock: Clock;
  log: Logger;
}

export class HostLoadMonitor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: HostLoadMonitorDeps) {}

  start(): void {
    this.deps.collector.prime?.();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.sampleOnce(), this.deps.intervalMs());
    // The monitor alone must not keep the process alive.
    this.timer.unref();
  }

  private async sampleOnce(): Promise<void> {
    const { sink, collector, clock, log } = this.deps;
    try {
      const r = await collector.sample();
      if (this.stopped) return;
      const load: LoadView = {
        cpuPercent: Number(r.cpuPercent ?? 0),
        ioBytesPerSec: Number(r.diskReadBytesPerSec ?? 0) + Number(r.diskWriteBytesPerSec ?? 0),
        waits: waitFigures(r),
        at: clock.now(),
      };
      await sink(load);
    } catch (e) {
      log.warn('could not take a sample of the host load', { error: e as Error });
    }
    this.schedule();
  }
}

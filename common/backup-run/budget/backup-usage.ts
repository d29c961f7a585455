/**
 * What the backups run under Headroom have used, over every run of this agent: counters that only grow,
 * from which the load collector makes the backup share of its LoadReport. A run's final usage is kept
 * when it ends, so that a backup ending between two reports still counts for the time it ran.
 */
import type { Usage } from './process-usage';

export interface UsageSource {
  usage(): Usage;
}

export class BackupUsage {
  private readonly live = new Set<UsageSource>();
  private readonly ended: Usage = { cpuSeconds: 0, ioBytes: 0 };

  add(source: UsageSource): void {
    this.live.add(source);
  }

  /** The run ended: its usage so far is kept, and it is read no more. */
  remove(source: UsageSource): void {
    if (!this.live.delete(source)) return;
    const u = source.usage();
    this.ended.cpuSeconds += u.cpuSeconds;
    this.ended.ioBytes += u.ioBytes;
  }

  /** Everything used so far by every run, ended or running. */
  total(): Usage {
    const t = { ...this.ended };
    for (const s of this.live) {
      const u = s.usage();
      t.cpuSeconds += u.cpuSeconds;
      t.ioBytes += u.ioBytes;
    }
    return t;
  }
}

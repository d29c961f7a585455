/**
 * A backup's copy that runs outside host-backup's process tree (QEMU's block jobs), as host-budget.ts holds
 * it through the driver's CopyControl (hypervisor/copy-control.ts): the speed and pause in force, changed one
 * at a time, each change told in words ("copy limited to 20.0 MiB/s by QEMU's job speed (…)"), and the
 * bytes it copied, by the hypervisor's counters.
 */
import { formatRate } from '../common/util/human';
import type { Logger } from '../common/util/log';
import type { CopyControl } from './hypervisor/copy-control';

/** The copy and how its driver holds it (for the messages). */
export interface OutsideCopy {
  control: CopyControl;
  /** How its speed is limited, e.g. "QEMU's job speed". */
  speedBy: string;
  /** How it is paused, e.g. "QEMU's block-job-pause". */
  pauseBy: string;
}

export interface CopyLimits {
  /** Bytes per second; 0: no limit. */
  speed: number;
  paused: boolean;
}

/** "copy limited to 20.0 MiB/s by QEMU's job speed (why)", "copy paused by why (QEMU's block-job-pause)". */
export function describeCopy(copy: OutsideCopy, state: CopyLimits, why: string): string {
  if (state.paused) return `copy paused by ${why} (${copy.pauseBy})`;
  return state.speed > 0
    ? `copy limited to ${formatRate(state.speed)} by ${copy.speedBy} (${why})`
    : `copy not limited (${why})`;
}

export class OutsideCopyHolder {
  private inForce: CopyLimits = { speed: 0, paused: false };
  /** The change under way (the first waits for the copy to start); the next one waits for it. */
  private changing: Promise<unknown> = Promise.resolve();
  private done = 0;

  constructor(
    private readonly copy: OutsideCopy,
    private readonly log: Logger,
  ) {}

  get state(): CopyLimits {
    return { ...this.inForce };
  }

  /**
   * Bytes copied so far, by the hypervisor's counters, as of the last refresh(): its reads and writes are
   * the backup's, not foreground load. Never lowered: the sum drops when one of several jobs ends first.
   */
  get copiedBytes(): number {
    return this.done;
  }

  async refresh(): Promise<void> {
    const p = await this.copy.control.progress().catch(() => undefined);
    if (p) this.done = Math.max(this.done, p.done);
  }

  /** Holds the copy to `wanted`, after the changes asked before; says what is in force. Never rejects. */
  hold(wanted: CopyLimits, why: string): Promise<{ ok: boolean; message: string }> {
    const change = this.changing.then(() => this.change(wanted, why));
    this.changing = change;
    return change;
  }

  private async change(wanted: CopyLimits, why: string): Promise<{ ok: boolean; message: string }> {
    const { control } = this.copy;
    try {
      if (wanted.speed !== this.inForce.speed) {
        await control.setSpeed(wanted.speed);
        this.inForce.speed = wanted.speed;
      }
      if (wanted.paused !== this.inForce.paused) {
        await (wanted.paused ? control.pause() : control.resume());
        this.inForce.paused = wanted.paused;
      }
      return { ok: true, message: describeCopy(this.copy, this.inForce, why) };
    } catch (err) {
      this.log.warn('could not hold the copy to its budget', { error: err as Error });
      return {
        ok: false,
        message: `the copy could not be changed (${(err as Error).message}); ${describeCopy(this.copy, this.inForce, 'before')}`,
      };
    }
  }
}

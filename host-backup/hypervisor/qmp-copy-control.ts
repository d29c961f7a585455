/**
 * CopyControl (copy-control.ts) for the `qmp` driver: the backup's block jobs, driven through QEMU's own
 * job controls over the QMP connection that started them. A job that has ended meanwhile is left out: its
 * copy is over, so there is nothing left to limit, pause or count.
 */
import type { CopyControl } from './copy-control';
import { type QmpClient, QmpCommandError } from './qmp-client';

/** A block job as query-block-jobs shows it (the fields read here). */
interface BlockJobInfo {
  device: string;
  offset: number;
  len: number;
  paused: boolean;
  speed: number;
}

export class QmpCopyControl implements CopyControl {
  constructor(
    private readonly client: QmpClient,
    private readonly jobIds: readonly string[],
  ) {}

  /** block-job-set-speed per job: QEMU's rate limit on the job's copying (0 lifts it). */
  async setSpeed(bytesPerSecond: number): Promise<void> {
    await this.each('block-job-set-speed', { speed: Math.max(0, Math.floor(bytesPerSecond)) });
  }

  /** block-job-pause per job: QEMU stops issuing copy requests; the guest's writes still go through. */
  async pause(): Promise<void> {
    await this.each('block-job-pause', {});
  }

  async resume(): Promise<void> {
    await this.each('block-job-resume', {});
  }

  async progress(): Promise<{ done: number; total: number }> {
    let done = 0;
    let total = 0;
    for (const j of await this.jobs()) {
      done += j.offset;
      total += j.len;
    }
    return { done, total };
  }

  /** Our jobs that QEMU still shows. */
  async jobs(): Promise<BlockJobInfo[]> {
    const jobs = await this.client.execute<BlockJobInfo[]>('query-block-jobs');
    return jobs.filter((j) => this.jobIds.includes(j.device));
  }

  /** Runs `command` on every job still there; throws QmpCommandError/QmpConnectionError as the client does. */
  private async each(command: string, args: Record<string, unknown>): Promise<void> {
    for (const j of await this.jobs()) {
      try {
        await this.client.execute(command, { device: j.device, ...args });
      } catch (err) {
        // Ended between the query and the command: its copy is over.
        if (err instanceof QmpCommandError && err.errorClass === 'DeviceNotFound') continue;
        throw err;
      }
    }
  }
}

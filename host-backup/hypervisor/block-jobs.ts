/**
 * Follows QEMU block jobs to their end through QMP events: when each was created (QEMU's own timestamp,
 * the point in time a backup holds), progress (query-block-jobs, polled), and how it ended —
 * BLOCK_JOB_COMPLETED with or without an error, or BLOCK_JOB_CANCELLED. Cancels them when asked.
 */
import type { Logger } from '../../common/util/log';
import type { QmpClient, QmpEvent } from './qmp-client';

export interface JobOutcome {
  jobId: string;
  status: 'completed' | 'failed' | 'cancelled';
  /** QEMU's error text when failed. */
  error?: string;
  /** Bytes the job had to copy, and had copied when it ended. */
  len: number;
  offset: number;
}

export interface JobProgress {
  jobId: string;
  offset: number;
  len: number;
}

export interface WaitOptions {
  /** Aborting cancels every job still running (their bitmaps keep their bits). */
  signal?: AbortSignal;
  onProgress?(progress: JobProgress[]): void;
  /** How often to ask QEMU for progress; this poll also notices a dead connection. Default 1000 ms. */
  pollIntervalMs?: number;
}

export class BlockJobWatcher {
  private readonly created = new Map<string, number>();
  private readonly outcomes = new Map<string, JobOutcome>();
  private readonly unsubscribe: () => void;
  private changed: () => void = () => {};

  /** Subscribes at once: create it before the command that starts the jobs, so that no event is missed. */
  constructor(
    private readonly client: QmpClient,
    private readonly jobIds: readonly string[],
    private readonly log: Logger,
  ) {
    this.unsubscribe = client.subscribe((e) => this.onEvent(e));
  }

  /** When QEMU created the job, by QEMU's clock (Unix ms). */
  createdAtMs(jobId: string): number | undefined {
    return this.created.get(jobId);
  }

  dispose(): void {
    this.unsubscribe();
  }

  /** Resolves when every job has ended; rejects only when QMP itself fails (connection lost). */
  async wait(options: WaitOptions = {}): Promise<Map<string, JobOutcome>> {
    const pollMs = options.pollIntervalMs ?? 1000;
    let cancelling = false;
    const cancelAll = () => {
      if (cancelling) return;
      cancelling = true;
      for (const id of this.jobIds) {
        if (this.outcomes.has(id)) continue;
        this.log.warn('cancelling block job', { jobId: id });
        this.client.execute('block-job-cancel', { device: id, force: true }).catch((err: Error) => {
          // The job may have ended meanwhile: its end event still arrives.
          this.log.debug('block-job-cancel refused', { jobId: id, error: err.message });
        });
      }
    };
    options.signal?.addEventListener('abort', cancelAll, { once: true });
    if (options.signal?.aborted) cancelAll();
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const check = () => {
          if (this.jobIds.every((id) => this.outcomes.has(id))) resolve();
        };
        this.changed = check;
        const poll = () => {
          this.client
            .execute<Array<{ device: string; offset: number; len: number }>>('query-block-jobs')
            .then((jobs) => {
              const mine = jobs.filter((j) => this.jobIds.includes(j.device));
              if (mine.length)
                options.onProgress?.(mine.map((j) => ({ jobId: j.device, offset: j.offset, len: j.len })));
              timer = setTimeout(poll, pollMs);
            }, reject);
        };
        check();
        timer = setTimeout(poll, pollMs);
      });
    } finally {
      clearTimeout(timer);
      this.changed = () => {};
      options.signal?.removeEventListener('abort', cancelAll);
    }
    return new Map(this.outcomes);
  }

  private onEvent(e: QmpEvent): void {
    const d = e.data;
    if (e.event === 'JOB_STATUS_CHANGE' && d.status === 'created' && typeof d.id === 'string') {
      if (this.jobIds.includes(d.id)) this.created.set(d.id, e.timestampMs);
      return;
    }
    const jobId = typeof d.device === 'string' ? d.device : undefined;
    if (jobId === undefined || !this.jobIds.includes(jobId)) return;
    const len = Number(d.len ?? 0);
    const offset = Number(d.offset ?? 0);
    switch (e.event) {
      case 'BLOCK_JOB_ERROR':
        // With the default on-error 'report', BLOCK_JOB_COMPLETED with the error text follows.
        this.log.warn('block job error', { jobId, operation: d.operation, action: d.action });
        return;
      case 'BLOCK_JOB_COMPLETED':
        this.outcomes.set(
          jobId,
          typeof d.error === 'string'
            ? { jobId, status: 'failed', error: d.error, len, offset }
            : { jobId, status: 'completed', len, offset },
        );
        break;
      case 'BLOCK_JOB_CANCELLED':
        this.outcomes.set(jobId, { jobId, status: 'cancelled', len, offset });
        break;
      default:
        return;
    }
    this.changed();
  }
}

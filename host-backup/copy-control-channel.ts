/**
 * How host-backup's budget reaches a copy that its child command drives (qmp-backup's QEMU block jobs):
 * host-backup holds a CopyControlChannel, the child follows it with followCopyControl() and applies each
 * change to the driver's own CopyControl (hypervisor/qmp-copy-control.ts for QMP).
 *
 * Why a channel to the child rather than host-backup driving QEMU itself: a QMP socket (plain QEMU's
 * `-qmp unix:…,server` as qemu-storage-daemon's `--monitor`) serves one client at a time, and the child
 * holds it for the whole backup; the job ids are the child's too. Why files in a private directory
 * (HEADROOM_COPY_CONTROL names it) rather than a pipe or signals: the child is started by the guarded run
 * (common/backup-run/child-process.ts) with stdio as the caller chose and a watchdog, which a pipe would
 * change for every command; a file carries a whole state (speed and pause together, so a missed update
 * cannot leave a job paused), is there before the child looks (it starts its jobs at the speed in force),
 * and the child's answer (`applied`) tells host-backup what QEMU took, with the jobs' own progress counters.
 *
 * Protocol: host-backup writes `state` ({seq, speed, paused}) atomically; the child polls it, applies a
 * newer seq, and writes `applied` ({seq, done, total, error?}) after each apply and every poll.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../common/util/log';
import type { CopyControl } from './hypervisor/copy-control';

/** The environment variable naming the channel's directory, for the child. */
export const COPY_CONTROL_ENV = 'HEADROOM_COPY_CONTROL';

/** What host-backup wants of the copy. */
export interface CopyState {
  /** Raised on every change. */
  seq: number;
  /** Bytes per second; 0: no limit. */
  speed: number;
  paused: boolean;
}

/** What the child last applied, and the copy's progress from the hypervisor's counters. */
interface CopyApplied {
  seq: number;
  done: number;
  total: number;
  /** Why the last change was not (wholly) applied. */
  error?: string;
}

const STATE = 'state';
const APPLIED = 'applied';
/** How often the child looks for a change and host-backup for the child's answer. */
const POLL_MS = 200;

/** Replaces `file` whole (no fsync: the state matters only while both processes run). */
function replace(file: string, value: unknown): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined; // not written yet
  }
}

/** Thrown by the channel when the child did not apply a change in time, or the hypervisor refused it. */
export class CopyControlError extends Error {
  override readonly name = 'CopyControlError';
}

/** host-backup's side: a CopyControl whose changes the child applies. */
export class CopyControlChannel implements CopyControl {
  private state: CopyState = { seq: 0, speed: 0, paused: false };
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly ackTimeoutMs: number,
  ) {}

  /**
   * A fresh private directory. `ackTimeoutMs`: how long a change waits for the child (which applies the
   * first only once its jobs run); the state stays written, so the child applies it when it gets there.
   */
  static create(ackTimeoutMs = 30_000): CopyControlChannel {
    const channel = new CopyControlChannel(fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-copy-')), ackTimeoutMs);
    channel.write();
    return channel;
  }

  /** The child's environment entry. */
  env(): Record<string, string> {
    return { [COPY_CONTROL_ENV]: this.dir };
  }

  setSpeed(bytesPerSecond: number): Promise<void> {
    return this.change({ speed: bytesPerSecond });
  }

  pause(): Promise<void> {
    return this.change({ paused: true });
  }

  resume(): Promise<void> {
    return this.change({ paused: false });
  }

  async progress(): Promise<{ done: number; total: number }> {
    const a = readJson<CopyApplied>(path.join(this.dir, APPLIED));
    return { done: a?.done ?? 0, total: a?.total ?? 0 };
  }

  /** The child is gone: pending changes give up, the directory goes. */
  close(): void {
    this.closed = true;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Writes the new state; resolves once the child applied it, rejects with CopyControlError. */
  private async change(to: Partial<Omit<CopyState, 'seq'>>): Promise<void> {
    if (this.closed) throw new CopyControlError('the backup is over');
    this.state = { ...this.state, ...to, seq: this.state.seq + 1 };
    this.write();
    const seq = this.state.seq;
    const until = Date.now() + this.ackTimeoutMs;
    for (;;) {
      const a = readJson<CopyApplied>(path.join(this.dir, APPLIED));
      if (a && a.seq >= seq) {
        if (a.error) throw new CopyControlError(a.error);
        return;
      }
      if (this.closed) throw new CopyControlError('the backup ended before it applied the change');
      if (Date.now() > until)
        throw new CopyControlError(
          `the backup has not applied it within ${this.ackTimeoutMs / 1000} s (its copy may not have started yet; it will on start)`,
        );
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  private write(): void {
    replace(path.join(this.dir, STATE), this.state);
  }
}

/** The child's side: what host-backup wants now (its directory from COPY_CONTROL_ENV); undefined without one. */
export function readCopyState(dir: string | undefined): CopyState | undefined {
  return dir === undefined ? undefined : readJson<CopyState>(path.join(dir, STATE));
}

export interface FollowOptions {
  dir: string;
  /** The driver's control over the running copy. */
  control: CopyControl;
  /** What is in force when following starts (the speed the jobs were started with, not paused). */
  inForce: { speed: number; paused: boolean };
  /** The child's own limit (qmp-backup --speed), which host-backup's speed never lifts; 0: none. */
  capBytesPerSec: number;
  log: Logger;
  pollMs?: number;
}

/** The tighter of two limits where 0 means none. */
export function tighterSpeed(a: number, b: number): number {
  return a === 0 ? b : b === 0 ? a : Math.min(a, b);
}

/** Applies host-backup's changes to `control` until the returned function is called (it resolves once idle). */
export function followCopyControl(o: FollowOptions): () => Promise<void> {
  let applied = 0;
  /** Why the change `applied` was not (wholly) applied; kept with it until the next one. */
  let error: string | undefined;
  const inForce = { ...o.inForce };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> = Promise.resolve();
  const tick = async () => {
    const wanted = readCopyState(o.dir);
    if (wanted && wanted.seq > applied) {
      error = undefined;
      try {
        const speed = tighterSpeed(o.capBytesPerSec, wanted.speed);
        if (speed !== inForce.speed) {
          await o.control.setSpeed(speed);
          inForce.speed = speed;
        }
        if (wanted.paused !== inForce.paused) {
          await (wanted.paused ? o.control.pause() : o.control.resume());
          inForce.paused = wanted.paused;
        }
        o.log.info('copy control applied', { speed: inForce.speed, paused: inForce.paused });
      } catch (err) {
        error = (err as Error).message;
        o.log.warn('could not apply the copy control', { error });
      }
      applied = wanted.seq;
    }
    const progress = await o.control.progress().catch(() => undefined);
    const answer: CopyApplied = { seq: applied, done: progress?.done ?? 0, total: progress?.total ?? 0, error };
    replace(path.join(o.dir, APPLIED), answer);
  };
  const loop = () => {
    busy = tick()
      .catch((err: Error) => o.log.warn('copy control', { error: err.message }))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, o.pollMs ?? POLL_MS);
      });
  };
  loop();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await busy;
  };
}

/**
 * A driver run's side (qmp-backup, a child of host-backup): the speed to start the copy at (its own
 * --speed, tightened by host-backup's budget already written), and what follows host-backup's changes
 * once the copy runs. Without a channel (`dir` undefined: run by hand), the copy keeps its own speed.
 */
export function childCopyControl(
  dir: string | undefined,
  capBytesPerSec: number,
  log: Logger,
): { startSpeed: number; onCopyStarted?(control: CopyControl): () => Promise<void> } {
  const startSpeed = tighterSpeed(capBytesPerSec, readCopyState(dir)?.speed ?? 0);
  if (dir === undefined) return { startSpeed };
  return {
    startSpeed,
    onCopyStarted: (control) =>
      followCopyControl({ dir, control, inForce: { speed: startSpeed, paused: false }, capBytesPerSec, log }),
  };
}

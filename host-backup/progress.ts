/**
 * What the host-side runner tells the person at the terminal while it waits for and holds a HYPERVISOR
 * token: one event per change while it waits (position, estimated start, what it waits for), the grant,
 * the start, the end. Each event comes with its data and a sentence; the caller decides whether to print
 * the sentence or the data (headroomctl --json).
 */
import { errorText, statusName } from '../common/client/call-status';
import type { GuardedRunHooks, GuardedRunResult } from '../common/backup-run/guarded-run';
import { describeGrant, describeQueued, queuedKey } from '../common/backup-run/wait-text';
import { formatClock, formatCommand, formatSpan } from '../common/util/human';
import { denyReason } from '../proto/enums';
import type { Queued__Output, Token__Output } from '../proto/generated/headroom/v1';

/** Tells the person at the terminal: one event (its name and data for --json, its text otherwise). */
export type Emit = (event: string, data: Record<string, unknown>, text: string) => void;

/** While the coordinator stays unreachable, repeat the notice at most this often. */
const UNREACHABLE_NOTICE_EVERY_MS = 30_000;

export interface ProgressSubject {
  host: string;
  vm: string;
  job: string;
}

export interface ProgressOptions {
  subject: ProgressSubject;
  /** The coordinator's address, for messages. */
  coordinator: string;
  /** Wall-clock Unix ms, for the times printed. */
  now(): number;
  emit: Emit;
}

/** Turns a token request's progress into events, as the module header says. */
export class ProgressReporter {
  private lastQueued = '';
  private lastUnreachableAt = -Infinity;

  constructor(private readonly o: ProgressOptions) {}

  emit(event: string, data: Record<string, unknown>, text: string): void {
    this.o.emit(event, data, text);
  }

  queued(q: Queued__Output): void {
    // The coordinator may repeat an update; say only what changed (to the second).
    const key = queuedKey(q);
    if (key === this.lastQueued) return;
    this.lastQueued = key;
    const { host, vm } = this.o.subject;
    const text = `waiting for a HYPERVISOR token on ${host} for ${vm}: ${describeQueued(q, this.o.now())}`;
    this.emit('queued', { ...q }, text);
  }

  granted(t: Token__Output): void {
    this.emit('granted', { token: t }, describeGrant(t, this.o.now()));
  }

  hooks(argv: readonly string[]): GuardedRunHooks {
    return {
      onQueued: (q) => this.queued(q),
      onGranted: (t) => this.granted(t),
      onDenied: (d) => {
        const reason = denyReason.show(d.reason);
        this.emit('denied', { ...d, reason }, `denied (${reason}): ${d.message || 'no reason given'}`);
      },
      onUnreachable: (info) => {
        const now = this.o.now();
        if (now - this.lastUnreachableAt < UNREACHABLE_NOTICE_EVERY_MS) return;
        this.lastUnreachableAt = now;
        const code = (info.error as { code?: number }).code;
        const why = code === undefined ? info.error.message : `${statusName(code)}: ${errorText(info.error)}`;
        const until = info.giveUpAtUnixMs ? `, giving up at ${formatClock(info.giveUpAtUnixMs, now)}` : '';
        this.emit(
          'unreachable',
          { error: why, attempt: info.attempt, retryInMs: info.retryInMs, giveUpAtUnixMs: info.giveUpAtUnixMs },
          `the coordinator at ${this.o.coordinator} is unreachable (${why}); retrying in ${formatSpan(info.retryInMs)}${until}`,
        );
      },
      onStarted: (pid) =>
        this.emit('started', { pid, argv }, `running ${formatCommand(argv)}${pid ? ` (pid ${pid})` : ''}`),
      onStopping: (why) => this.emit('stopping', { why }, `stopping the command: ${why}`),
    };
  }

  finished(r: GuardedRunResult): void {
    const took = r.durationMs === undefined ? '' : ` after ${formatSpan(r.durationMs)}`;
    const text =
      r.status === 'succeeded' || r.status === 'failed'
        ? `${r.status === 'succeeded' ? 'done' : 'failed'}: ${r.message}${took}; token ${r.token ? 'released' : 'not held'}`
        : `${r.status}: ${r.message}`;
    this.emit(
      'finished',
      { status: r.status, exitCode: r.exitCode, message: r.message, durationMs: r.durationMs },
      `${text} (exit ${r.exitCode})`,
    );
  }
}

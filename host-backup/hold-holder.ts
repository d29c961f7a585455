/**
 * The holder behind `headroomctl hold`: waits for the token (progress as events, for the person waiting and
 * the invocation that started it), then keeps it renewed (common/client/lease-renewer.ts) and watched for a
 * revoke (revoke-watch.ts) until told to release, with the outcome found in the release request
 * (hold-state.ts).
 * Nothing runs under the token here: the backup is someone else's (vzdump). When the token is lost
 * (revoked, expired, renewals failing past the fail-safe), the holder stops that backup the way the tool
 * is built (loss-stop.ts: `backup-cancel` in the VM's QEMU, or SIGTERM to what vzdump runs), when told
 * how; either way it says so loudly, records it in the state file, and exits. Stopping is the default
 * of the vzdump hook rather than pausing: Proxmox's QEMU backup has no pause, and a paused tar would keep
 * vzdump's job and the guest's backup lock for as long as no token comes back.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { systemClock } from '../common/util/clock';
import { type StopReason, describeStop, releaseToken, toStopReason } from '../common/backup-run/guarded-run';
import { Renewer } from '../common/client/lease-renewer';
import { acquireToken } from '../common/client/token-acquirer';
import type { v1 } from '../proto';
import type { Logger } from '../common/util/log';
import { budgetFromWire, describeBudgetState } from '../common/backup-run/budget/run-budget';
import type { CoordinatorLink } from './coordinator-link';
import type { LossStop } from './loss-stop';
import { type HoldState, processAlive, readReleaseRequest, releaseRequestFile, writeJsonFile } from './hold-state';
import { type Emit, ProgressReporter } from './progress';
import { watchRevocation } from './revoke-watch';

/**
 * How a hold ended: the token released with the outcome asked for; not released (the coordinator refused
 * or could not be reached: it expires there by itself); lost while held (revoked, expired, renewals
 * failing); or never granted (denied, not within the window, or withdrawn; `signal` when a signal did it).
 */
export type HoldEnd =
  | { kind: 'released' }
  | { kind: 'unreleased' }
  | { kind: 'lost' }
  | { kind: 'not-granted'; signal?: NodeJS.Signals; misconfigured?: boolean };

/** What the holder tells the `hold` invocation that started it, over the IPC channel. */
export type HolderMessage =
  { event: 'progress'; text: string } | { event: 'granted'; tokenId: string } | { event: 'failed'; end: HoldEnd };

/** The invocation that started the holder, while it waits for the grant. */
export interface ParentChannel {
  send(message: HolderMessage): void;
  /** `gone` is called once if the parent goes away (killed while waiting: the request is then withdrawn). */
  onGone(gone: () => void): void;
}

export interface HolderOptions {
  request: Omit<v1.AcquireRequest, 'requestId'> & { host: string; vm: string; job: string };
  stateFile: string;
  parent?: ParentChannel;
  /** Release (as a failure) or stop waiting when this process ends: the backup tool that asked for the token. */
  watchPid?: number;
  /** How to stop the backup should the token be lost; absent: it runs on without it. */
  lossStop?: LossStop;
  link: CoordinatorLink;
  log: Logger;
  /** Wall-clock Unix ms. */
  now(): number;
  /**
   * Aborted with a StopReason to end the hold: until the grant, the request is withdrawn; after it, the
   * token is released with the outcome found in the release request.
   */
  signal: AbortSignal;
  /** Progress events, for the person waiting for the grant. */
  emit: Emit;
  /** A message for people only: why there is no token, how the release went. */
  note(text: string): void;
}

/** How often the watched process is looked at. */
const WATCH_EVERY_MS = 1_000;

/** Holds a token as the module header says; resolves to how the hold ended. */
export async function runHolder(o: HolderOptions): Promise<HoldEnd> {
  const { request, stateFile, parent } = o;
  const subject = { host: request.host, vm: request.vm, job: request.job };
  const write = (s: Pick<HoldState, 'phase'> & Partial<HoldState>) =>
    writeJsonFile(stateFile, { pid: process.pid, ...subject, ...s });
  // A request left by an earlier holder of this file must not decide our outcome.
  fs.rmSync(releaseRequestFile(stateFile), { force: true });
  write({ phase: 'waiting' });

  const reporter = new ProgressReporter({ subject, coordinator: o.link.address, now: o.now, emit: o.emit });
  const abort = new AbortController();
  let granted = false;
  // Until the grant, ending means withdrawing the request; after it, releasing the token.
  let onEnd = (stop: StopReason) => abort.abort(stop);
  const onAbort = () => onEnd(toStopReason(o.signal.reason));
  if (o.signal.aborted) onAbort();
  else o.signal.addEventListener('abort', onAbort, { once: true });
  parent?.onGone(() => {
    if (!granted) abort.abort({ kind: 'shutdown', reason: 'the hold command waiting for the grant is gone' });
  });
  // The tool that asked for the token may die without ever asking to release it: the token must not outlive it.
  const watch =
    o.watchPid === undefined
      ? undefined
      : setInterval(() => {
          if (!processAlive(o.watchPid!))
            onEnd({ kind: 'shutdown', reason: `process ${o.watchPid} (the backup tool) ended without a release` });
        }, WATCH_EVERY_MS);
  const client = o.link.token();
  const clock = systemClock;
  try {
    const acquired = await acquireToken(
      {
        client,
        clock,
        log: o.log,
        signal: abort.signal,
        onUnreachable: 'skip',
        hooks: reporter.hooks([]),
        connection: o.link.connection,
      },
      { ...request, requestId: randomUUID() },
    );
    if (acquired.kind !== 'granted') {
      const reason = toStopReason(abort.signal.reason);
      const end: HoldEnd = {
        kind: 'not-granted',
        signal: acquired.kind === 'cancelled' && reason.kind === 'signal' ? reason.signal : undefined,
        misconfigured: acquired.kind === 'misconfigured',
      };
      let message = acquired.kind === 'run-without-token' ? acquired.error.message : acquired.message;
      if (acquired.kind === 'cancelled') message += `: ${describeStop(reason)}`;
      write({ phase: 'failed', message });
      o.note(`no token: ${message}`);
      parent?.send({ event: 'failed', end });
      return end;
    }
    granted = true;
    const token = { tokenId: acquired.token.tokenId, fencing: acquired.token.fencing };
    const grantedAtUnixMs = o.now();
    reporter.granted(acquired.token);
    const budget = describeBudgetState({ budget: budgetFromWire(acquired.token.budget), paused: false });
    reporter.emit(
      'enforced',
      { budget: acquired.token.budget, lossStop: o.lossStop?.what },
      `the token's budget (${budget}) is not enforced by this hold: the backup tool's own limits are (vzdump: bwlimit, ionice); if the token is lost, ${o.lossStop ? `the hold will ${o.lossStop.what}` : 'the backup runs on without it'}`,
    );
    write({ phase: 'held', token, grantedAtUnixMs });
    parent?.send({ event: 'granted', tokenId: token.tokenId });

    return await new Promise<HoldEnd>((resolve) => {
      let ended = false;
      const end = () => {
        ended = true;
        renewer.stop();
        stopWatching();
      };
      const lose = async (lost: string) => {
        if (ended) return;
        end();
        // Stopped before the state says lost: the release that the backup tool's failure brings (vzdump's
        // backup-abort) then reports what was done.
        const stopped = o.lossStop ? await o.lossStop.stop() : 'the backup runs on without it';
        const message = `${lost}; ${stopped}`;
        // Say so where people look (the holder's log, the state file that the next `hold --release` reports from).
        o.log.error(
          o.lossStop
            ? 'HYPERVISOR token lost while the backup runs: the backup was stopped'
            : 'HYPERVISOR token lost while the backup runs; guest backups may start on this host',
          { tokenId: token.tokenId, vm: subject.vm, reason: message },
        );
        write({ phase: 'lost', token, grantedAtUnixMs, message });
        resolve({ kind: 'lost' });
      };
      const renewer = new Renewer({ client, clock, log: o.log }, acquired.token, acquired.receivedAt, (lost) => {
        void lose(lost.message);
      });
      const stopWatching = watchRevocation(o.link, o.log, acquired.token, (detail) => {
        void lose(`revoked by the coordinator: ${detail || 'no reason given'}`);
      });
      onEnd = (stop) => {
        if (ended) return;
        end();
        const why =
          stop.kind === 'signal'
            ? `headroomctl hold received ${stop.signal} without a release request`
            : describeStop(stop);
        void release(o, why, token, grantedAtUnixMs).then(({ message, released }) => {
          write({ phase: released ? 'released' : 'lost', token, grantedAtUnixMs, message });
          o.note(message);
          resolve({ kind: released ? 'released' : 'unreleased' });
        });
      };
      // Told to stop just as the grant arrived: release at once rather than hold a token nobody wants.
      if (abort.signal.aborted) onEnd(toStopReason(abort.signal.reason));
    });
  } finally {
    clearInterval(watch);
    o.signal.removeEventListener('abort', onAbort);
  }
}

/** Releases `token` with the outcome asked for in the release request (a failure when there is none). */
async function release(
  o: { stateFile: string; link: CoordinatorLink; log: Logger; now(): number },
  why: string,
  token: { tokenId: string; fencing: number },
  grantedAtUnixMs: number,
): Promise<{ released: boolean; message: string }> {
  let success = false;
  try {
    const asked = readReleaseRequest(o.stateFile);
    if (asked) {
      success = asked.success;
      why = asked.message || 'released by headroomctl hold --release';
    }
  } catch (err) {
    why = `unreadable release request, released as a failure: ${(err as Error).message}`;
  }
  const durationMs = Math.min(Math.max(0, o.now() - grantedAtUnixMs), 0xffffffff);
  // No bytes: what ran under the hold (vzdump) is not ours to measure, so the history says they are unknown.
  const outcome: v1.Outcome = { success, durationMs, exitCode: success ? 0 : 1, message: why };
  const released = await releaseToken({ client: o.link.token(), log: o.log }, token, outcome);
  const message = released
    ? `released token ${token.tokenId} (${success ? 'success' : 'failure'}): ${why}`
    : `could not release token ${token.tokenId}: the coordinator refused or could not be reached (it expires there by itself)`;
  return { released, message };
}

/**
 * The holder behind `headroomctl hold`: waits for the token (progress to stderr and to the invocation that
 * started it), then keeps it renewed (common/lease-renewer.ts) and watched for a revoke (revoke-watch.ts)
 * until a signal tells it to release, with the outcome found in the release request (hold-state.ts).
 * Nothing runs under the token here: the backup is someone else's (vzdump), so a lost token cannot stop
 * it; the holder says so loudly, records it in the state file, and exits.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { systemClock } from '../common/util/clock';
import { type StopReason, describeStop, releaseToken, toStopReason } from '../common/backup-run/guarded-run';
import { Renewer } from '../common/client/lease-renewer';
import { acquireToken } from '../common/client/token-acquirer';
import type { v1 } from '../proto';
import { type Context, note } from '../ctl/context';
import { EXIT_FAILURE, EXIT_OK, EXIT_TEMPFAIL } from '../common/util/exit-codes';
import { type HoldState, processAlive, readReleaseRequest, releaseRequestFile, writeJsonFile } from './hold-state';
import { ProgressReporter } from '../ctl/commands/host-backup';
import { watchRevocation } from './revoke-watch';

/** What the holder tells the `hold` invocation that started it, over the IPC channel. */
export type HolderMessage =
  | { event: 'progress'; text: string }
  | { event: 'granted'; tokenId: string }
  | { event: 'failed'; exitCode: number };

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
}

/** How often the watched process is looked at. */
const WATCH_EVERY_MS = 1_000;

/** Holds a token as the module header says; resolves to the exit code. */
export async function runHolder(ctx: Context, o: HolderOptions): Promise<number> {
  const { request, stateFile, parent } = o;
  const subject = { host: request.host, vm: request.vm, job: request.job };
  const write = (s: Pick<HoldState, 'phase'> & Partial<HoldState>) => writeJsonFile(stateFile, { pid: process.pid, ...subject, ...s });
  // A request left by an earlier holder of this file must not decide our outcome.
  fs.rmSync(releaseRequestFile(stateFile), { force: true });
  write({ phase: 'waiting' });

  // Progress goes to our stderr (the log) and, while someone waits for the grant, to them.
  const relay: Context = {
    ...ctx,
    io: {
      stdout: ctx.io.stdout,
      stderr: (text) => {
        ctx.io.stderr(text);
        parent?.send({ event: 'progress', text });
      },
    },
  };
  const reporter = new ProgressReporter(relay, subject);
  const abort = new AbortController();
  let granted = false;
  // Until the grant, ending means withdrawing the request; after it, releasing the token.
  let onEnd = (stop: StopReason) => abort.abort(stop);
  const removeInterrupt = ctx.onInterrupt((signal) => onEnd({ kind: 'signal', signal }));
  parent?.onGone(() => {
    if (!granted) abort.abort({ kind: 'shutdown', reason: 'the hold command waiting for the grant is gone' });
  });
  // The tool that asked for the token may die without ever asking to release it: the token must not outlive it.
  const watch =
    o.watchPid === undefined
      ? undefined
      : setInterval(() => {
          if (!processAlive(o.watchPid!)) onEnd({ kind: 'shutdown', reason: `process ${o.watchPid} (the backup tool) ended without a release` });
        }, WATCH_EVERY_MS);
  const client = ctx.clients().token;
  const clock = systemClock;
  try {
    const acquired = await acquireToken(
      { client, clock, log: ctx.log, signal: abort.signal, onUnreachable: 'skip', hooks: reporter.hooks([]) },
      { ...request, requestId: randomUUID() },
    );
    if (acquired.kind !== 'granted') {
      const reason = toStopReason(abort.signal.reason);
      const exitCode =
        acquired.kind === 'cancelled' && reason.kind === 'signal' ? 128 + os.constants.signals[reason.signal] : EXIT_TEMPFAIL;
      let message = acquired.kind === 'run-without-token' ? acquired.error.message : acquired.message;
      if (acquired.kind === 'cancelled') message += `: ${describeStop(reason)}`;
      write({ phase: 'failed', message });
      note(relay, `no token: ${message}`);
      parent?.send({ event: 'failed', exitCode });
      return exitCode;
    }
    granted = true;
    const token = { tokenId: acquired.token.tokenId, fencing: acquired.token.fencing };
    const grantedAtUnixMs = ctx.now();
    reporter.granted(acquired.token);
    write({ phase: 'held', token, grantedAtUnixMs });
    parent?.send({ event: 'granted', tokenId: token.tokenId });

    return await new Promise<number>((resolve) => {
      let ended = false;
      const end = () => {
        ended = true;
        renewer.stop();
        stopWatching();
      };
      const lose = (message: string) => {
        if (ended) return;
        end();
        // The backup goes on without the token: say so where people look (the holder's log, the state
        // file that the next `hold --release` reports from).
        ctx.log.error('HYPERVISOR token lost while the backup runs; guest backups may start on this host', {
          tokenId: token.tokenId,
          vm: subject.vm,
          reason: message,
        });
        write({ phase: 'lost', token, grantedAtUnixMs, message });
        resolve(EXIT_TEMPFAIL);
      };
      const renewer = new Renewer({ client, clock, log: ctx.log }, acquired.token, acquired.receivedAt, (lost) => lose(lost.message));
      const stopWatching = watchRevocation(ctx, acquired.token, (detail) => lose(`revoked by the coordinator: ${detail || 'no reason given'}`));
      onEnd = (stop) => {
        if (ended) return;
        end();
        const why = stop.kind === 'signal' ? `headroomctl hold received ${stop.signal} without a release request` : describeStop(stop);
        void release(ctx, stateFile, why, token, grantedAtUnixMs).then(({ message, released }) => {
          write({ phase: released ? 'released' : 'lost', token, grantedAtUnixMs, message });
          note(ctx, message);
          resolve(released ? EXIT_OK : EXIT_FAILURE);
        });
      };
      // Told to stop just as the grant arrived: release at once rather than hold a token nobody wants.
      if (abort.signal.aborted) onEnd(toStopReason(abort.signal.reason));
    });
  } finally {
    clearInterval(watch);
    removeInterrupt();
  }
}

/** Releases `token` with the outcome asked for in the release request (a failure when there is none). */
async function release(
  ctx: Context,
  stateFile: string,
  why: string,
  token: { tokenId: string; fencing: number },
  grantedAtUnixMs: number,
): Promise<{ released: boolean; message: string }> {
  let success = false;
  try {
    const asked = readReleaseRequest(stateFile);
    if (asked) {
      success = asked.success;
      why = asked.message || 'released by headroomctl hold --release';
    }
  } catch (err) {
    why = `unreadable release request, released as a failure: ${(err as Error).message}`;
  }
  const durationMs = Math.min(Math.max(0, ctx.now() - grantedAtUnixMs), 0xffffffff);
  const outcome: v1.Outcome = { success, bytes: 0, durationMs, exitCode: success ? 0 : 1, message: why };
  const released = await releaseToken({ client: ctx.clients().token, log: ctx.log }, token, outcome);
  const message = released
    ? `released token ${token.tokenId} (${success ? 'success' : 'failure'}): ${why}`
    : `could not release token ${token.tokenId}: the coordinator refused or could not be reached (it expires there by itself)`;
  return { released, message };
}

/**
 * The end of a hold (`headroomctl hold --release`): asks the holder (hold-holder.ts) to release its token
 * with the backup's outcome, through the release request beside the state file and a SIGTERM, waits for
 * it to say how that went, and releases on its behalf when it died holding the token. The two meet in the
 * state file (hold-state.ts).
 */
import { sleep } from '../common/util/backoff';
import { releaseToken } from '../common/backup-run/guarded-run';
import type { TokenClient } from '../common/client/connection';
import type { Logger } from '../common/util/log';
import {
  FINAL_PHASES,
  type HoldState,
  processAlive,
  readHoldState,
  releaseRequestFile,
  removeHoldFiles,
  writeJsonFile,
} from './hold-state';

/** How long to wait for the holder to release and exit: its release retries take a few seconds. */
const RELEASE_WAIT_MS = 30_000;

export interface HoldReleaseOptions {
  stateFile: string;
  /** How the backup ended. */
  success: boolean;
  /** Recorded with the outcome. */
  message: string;
  /** For releasing on behalf of a holder that died holding the token; asked for only then. */
  client(): TokenClient;
  log: Logger;
}

/**
 * How a release went, with the sentence that says so: done (the token released with the outcome; or nothing
 * was held, and the backup failed anyway); not-held (the backup ran without its token: lost, never granted,
 * or no longer releasable); error (no hold in that file, or the holder did not answer: nothing was done).
 */
export interface HoldReleaseResult {
  end: 'done' | 'not-held' | 'error';
  message: string;
}

/** Waits until the holder has written a final phase or is gone; resolves to the last state read. */
async function waitForHolder(stateFile: string, state: HoldState): Promise<HoldState | undefined> {
  const giveUpAt = Date.now() + RELEASE_WAIT_MS;
  let current: HoldState | undefined = state;
  while (current && !FINAL_PHASES.has(current.phase) && processAlive(current.pid) && Date.now() < giveUpAt) {
    await sleep(50);
    current = readHoldState(stateFile);
  }
  return current;
}

/** Ends the hold of `stateFile` as the module header says; its files are removed unless the holder still holds. */
export async function releaseHold(o: HoldReleaseOptions): Promise<HoldReleaseResult> {
  const { stateFile, success, message } = o;
  let state = readHoldState(stateFile);
  if (!state) return { end: 'error', message: `nothing to release: ${stateFile} does not exist` };
  if (!FINAL_PHASES.has(state.phase)) {
    writeJsonFile(releaseRequestFile(stateFile), { success, message });
    if (processAlive(state.pid)) process.kill(state.pid, 'SIGTERM');
    const last = await waitForHolder(stateFile, state);
    if (!last) return { end: 'error', message: `${stateFile} disappeared while the holder released` };
    state = last;
  }
  const what = `the HYPERVISOR token for ${state.vm} on ${state.host}`;
  let result: HoldReleaseResult;
  switch (state.phase) {
    case 'released':
      result = { end: 'done', message: state.message ?? `released ${what}` };
      break;
    case 'lost':
      result = {
        end: 'not-held',
        message: `${what} was lost while it was held: ${state.message ?? 'no reason recorded'}`,
      };
      break;
    case 'failed':
      result = {
        end: success ? 'not-held' : 'done',
        message: `no token was held: ${state.message ?? 'no reason recorded'}`,
      };
      break;
    case 'waiting':
      result = {
        end: success ? 'not-held' : 'done',
        message: `the holder (pid ${state.pid}) ended while still waiting: nothing was held`,
      };
      break;
    case 'held': {
      if (processAlive(state.pid)) {
        return {
          end: 'error',
          message: `the holder (pid ${state.pid}) did not release ${what} within ${RELEASE_WAIT_MS / 1000} s; it stays held until it expires`,
        };
      }
      // The holder died without releasing: release on its behalf, with the outcome we were given.
      const outcome = {
        success,
        durationMs: 0,
        exitCode: success ? 0 : 1,
        message: message || 'released by headroomctl hold --release',
      };
      const released = await releaseToken({ client: o.client(), log: o.log }, state.token!, outcome);
      result = released
        ? {
            end: 'done',
            message: `the holder (pid ${state.pid}) was gone; released ${what} (${success ? 'success' : 'failure'})`,
          }
        : {
            end: 'not-held',
            message: `the holder (pid ${state.pid}) was gone and ${what} could not be released (it had expired, or the coordinator is unreachable)`,
          };
      break;
    }
  }
  removeHoldFiles(stateFile);
  return result;
}

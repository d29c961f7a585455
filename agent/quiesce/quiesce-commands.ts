/**
 * The agent's answers to the coordinator's FreezeCommand and ThawCommand: runs the Quiescer and turns what
 * it did into the QuiesceReport the session sends before the command's ack; and the unsolicited THAWED
 * report of an auto-thaw. The freeze's bound is the Quiescer's own timer, untouched by the session: a lost
 * connection never keeps a guest frozen.
 */
import type { Logger } from '../../common/util/log';
import type { v1 } from '../../proto';
import type { CommandResult } from '../session';
import type { AutoThawListener, HookOutcome, Quiescer, ThawResult } from './quiescer';

function hookResults(hooks: readonly HookOutcome[]): v1.HookResult[] {
  return hooks.map((h) => ({
    name: h.name,
    ok: h.ok,
    message: h.message,
    durationMs: Math.max(0, Math.round(h.durationMs)),
  }));
}

/** A thaw as the coordinator hears of it. */
export function thawReport(tokenId: string, r: ThawResult): v1.QuiesceReport {
  return {
    tokenId,
    state: r.ok ? 'QUIESCE_STATE_THAWED' : 'QUIESCE_STATE_FAILED',
    message: r.message,
    hooks: hookResults(r.hooks),
    autoThawed: r.autoThawed,
    frozenMs: Math.max(0, Math.round(r.frozenMs)),
  };
}

/** Runs freeze and thaw commands on `quiescer`. */
export async function quiesceCommand(
  quiescer: Quiescer,
  command: v1.Command__Output,
  log: Logger,
): Promise<CommandResult> {
  if (command.freeze) {
    const { tokenId, holdMs } = command.freeze;
    const r = await quiescer.freeze(tokenId, holdMs);
    if (r.state === 'FROZEN') {
      log.info('guest frozen for a snapshot', { tokenId, holdMs: r.holdMs, hooks: r.hooks.map((h) => h.name) });
      return {
        ok: true,
        message: 'frozen',
        quiesce: { tokenId, state: 'QUIESCE_STATE_FROZEN', hooks: hookResults(r.hooks), holdMs: r.holdMs },
      };
    }
    log.warn('could not freeze the guest', { tokenId, reason: r.message });
    return {
      ok: false,
      message: r.message,
      quiesce: { tokenId, state: 'QUIESCE_STATE_FAILED', message: r.message, hooks: hookResults(r.hooks) },
    };
  }
  if (command.thaw) {
    const { tokenId } = command.thaw;
    let r: ThawResult;
    try {
      r = await quiescer.thaw(tokenId);
    } catch (err) {
      // An unknown token: nothing of ours is frozen under it.
      const message = (err as Error).message;
      return { ok: false, message, quiesce: { tokenId, state: 'QUIESCE_STATE_FAILED', message } };
    }
    log[r.ok ? 'info' : 'warn'](r.ok ? 'guest thawed' : 'guest thawed, but a thaw hook failed', {
      tokenId,
      frozenMs: r.frozenMs,
      autoThawed: r.autoThawed,
      message: r.message,
    });
    return { ok: r.ok, message: r.message || 'thawed', quiesce: thawReport(tokenId, r) };
  }
  return { ok: false, message: 'not a freeze or thaw command' };
}

/** The Quiescer's auto-thaw, reported through `send` (the session's reportQuiesce) and logged. */
export function autoThawReporter(send: (report: v1.QuiesceReport) => void, log: Logger): AutoThawListener {
  return (tokenId, result) => {
    log.warn('no thaw came within the bound: the guest thawed by itself', {
      tokenId,
      frozenMs: result.frozenMs,
      ok: result.ok,
      message: result.message,
    });
    send(thawReport(tokenId, result));
  };
}

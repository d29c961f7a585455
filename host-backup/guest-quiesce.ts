/**
 * The host's side of one snapshot's quiesce (`--quiesce require|try|off`): asks the coordinator to freeze
 * the guest's applications right before the snapshot point (TokenService.Quiesce), to thaw them right after
 * it (Thaw), and works out the consistency achieved. Used by host-backup around a command, and by
 * qmp-backup around the QMP transaction that starts the block jobs.
 */
import { type TokenClient, unary } from '../common/client/connection';
import { errorText } from '../common/client/call-status';
import { formatDuration, parseFlagDuration } from '../common/util/duration';
import type { v1 } from '../proto';
import { quiesceState } from '../proto/enums';
import type { Consistency } from './catalog/chain-rules';

/** How long the coordinator waits for the agent's answer (QuiesceRequest.timeout_ms); the agent is in the same host. */
const ANSWER_TIMEOUT_MS = 30_000;
/** Our deadline on top of the coordinator's wait (its DEFAULT_THAW_TIMEOUT_MS for a thaw is the same). */
const CALL_DEADLINE_MS = ANSWER_TIMEOUT_MS + 5_000;

export type QuiesceMode = 'require' | 'try' | 'off';
export const QUIESCE_MODES: readonly QuiesceMode[] = ['require', 'try', 'off'];

export function parseQuiesceMode(raw: string): QuiesceMode {
  if (!(QUIESCE_MODES as readonly string[]).includes(raw))
    throw new Error(`expected require, try or off, got "${raw}"`);
  return raw as QuiesceMode;
}

/** --quiesce-hold: a bound the coordinator accepts (hold_ms at most 10 minutes). */
export function parseQuiesceHold(raw: string): number {
  const ms = parseFlagDuration(raw);
  if (ms < 1 || ms > 600_000) throw new Error(`${raw} is out of range (1ms to ${formatDuration(600_000)})`);
  return ms;
}

export interface GuestQuiesceOptions {
  client: TokenClient;
  token: { tokenId: string; fencing: number };
  mode: QuiesceMode;
  /** The freeze's bound; 0: the agent's default. */
  holdMs: number;
  /** Tells the person at the terminal (stderr). */
  say(event: string, data: Record<string, unknown>, text: string): void;
}

/** One snapshot's freeze and thaw. */
export class GuestQuiesce {
  private frozen = false;
  private holdMs = 0;

  constructor(private readonly o: GuestQuiesceOptions) {}

  /**
   * Right before the snapshot point. Answers why the backup must not run (require, and the guest could not
   * quiesce), else undefined: frozen, or going on crash-consistent (try), or not asked (off).
   */
  async freeze(): Promise<string | undefined> {
    const { mode, token, say } = this.o;
    if (mode === 'off') return undefined;
    let why: string;
    try {
      const r = await unary<v1.QuiesceRequest, v1.QuiesceResponse__Output>(
        this.o.client.Quiesce.bind(this.o.client),
        { ...token, holdMs: this.o.holdMs, timeoutMs: ANSWER_TIMEOUT_MS },
        CALL_DEADLINE_MS,
      );
      if (r.state === 'QUIESCE_STATE_FROZEN') {
        this.frozen = true;
        this.holdMs = r.holdMs;
        const hooks = r.hooks.map((h) => h.name).join(', ') || 'no hooks';
        say(
          'quiesced',
          { holdMs: r.holdMs, hooks: r.hooks },
          `guest quiesced (${hooks}); it thaws by itself after ${formatDuration(r.holdMs)} at the latest`,
        );
        return undefined;
      }
      why = r.message || 'the guest could not quiesce';
    } catch (err) {
      why = `could not ask for the quiesce: ${errorText(err)}`;
    }
    if (mode === 'require') {
      say(
        'quiesce-failed',
        { mode, reason: why },
        `guest not quiesced: ${why}; --quiesce require: the backup does not run`,
      );
      return `guest not quiesced (--quiesce require): ${why}`;
    }
    say(
      'quiesce-failed',
      { mode, reason: why },
      `guest not quiesced: ${why}; --quiesce try: going on, crash-consistent`,
    );
    return undefined;
  }

  /** Right after the snapshot point: thaws, and answers the consistency the snapshot achieved. */
  async thaw(): Promise<Consistency> {
    if (!this.frozen) return 'crash';
    this.frozen = false;
    const { token, say } = this.o;
    let why: string;
    try {
      const r = await unary<v1.ThawRequest, v1.ThawResponse__Output>(
        this.o.client.Thaw.bind(this.o.client),
        token,
        CALL_DEADLINE_MS,
      );
      if (!r.autoThawed && (r.state === 'QUIESCE_STATE_THAWED' || r.hooks.length > 0)) {
        // FAILED with hooks: a thaw hook failed, but the freeze held at the snapshot point.
        const problem = r.state === 'QUIESCE_STATE_THAWED' ? '' : ` (a thaw hook failed: ${r.message})`;
        say(
          'thawed',
          { frozenMs: r.frozenMs, state: quiesceState.show(r.state), message: r.message },
          `guest thawed after ${formatDuration(r.frozenMs)} frozen${problem}; the snapshot is application-consistent`,
        );
        return 'application';
      }
      why = r.autoThawed
        ? `the guest thawed by itself before the snapshot point was done (its bound of ${formatDuration(this.holdMs)} passed)`
        : `the thaw could not confirm the freeze held: ${r.message}`;
    } catch (err) {
      why = `the thaw could not confirm the freeze held: ${errorText(err)}`;
    }
    say('thawed', { consistency: 'crash', reason: why }, `${why}; the snapshot is crash-consistent`);
    return 'crash';
  }
}

/**
 * The agent's Quiescer: runs the application hooks in order to freeze, thaws them in reverse, holds one
 * freeze at a time, and thaws by itself once the freeze's bound passes (counted from the moment the first
 * hook starts), telling the AutoThawListener. Every hook runs under its own timeout; the bound also cuts
 * short a freeze still in progress. Time comes from a Clock and the global timers, so tests drive it with
 * fake timers; the hooks are the adapters (./hooks-directory.ts, ./fsfreeze-hook.ts, ...).
 */
import { Clock, systemClock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { FrozenHook, HookList, QuiesceHook } from './hook';
import { AutoThawListener, FreezeResult, HookOutcome, Quiescer, ThawResult, UnknownFreezeError } from './quiescer';
import { formatDuration } from '../../common/util/duration';

export const DEFAULT_HOLD_MS = 10_000;
export const DEFAULT_MAX_HOLD_MS = 60_000;
export const DEFAULT_HOOK_TIMEOUT_MS = 5_000;

/** How many thawed tokens are remembered, to answer a repeated thaw (or one after an auto-thaw) with its result. */
const REMEMBERED_THAWS = 32;

export interface HookQuiescerOptions {
  hooks: HookList;
  /** The hold when a freeze asks for 0 ms; capped by maxHoldMs. */
  defaultHoldMs?: number;
  maxHoldMs?: number;
  /** Each hook's freeze, and each hook's thaw, gets at most this long. */
  hookTimeoutMs?: number;
  onAutoThaw?: AutoThawListener;
  clock?: Clock;
  log?: Logger;
}

type Phase = 'freezing' | 'frozen' | 'thawing';

interface Freeze {
  tokenId: string;
  phase: Phase;
  holdMs: number;
  /** When the first hook started; set once the hooks are listed. */
  startedAt: number;
  frozen: { name: string; handle: FrozenHook }[];
  /** Aborted when the bound passes or a thaw arrives before every hook froze. */
  abort: AbortController;
  timer?: ReturnType<typeof setTimeout>;
  freezing?: Promise<FreezeResult>;
  thawing?: Promise<ThawResult>;
}

const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class HookQuiescer implements Quiescer {
  private current: Freeze | undefined;
  private readonly thawed = new Map<string, ThawResult>();
  private readonly defaultHoldMs: number;
  private readonly maxHoldMs: number;
  private readonly hookTimeoutMs: number;
  private readonly clock: Clock;

  constructor(private readonly options: HookQuiescerOptions) {
    this.maxHoldMs = options.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
    this.defaultHoldMs = Math.min(options.defaultHoldMs ?? DEFAULT_HOLD_MS, this.maxHoldMs);
    this.hookTimeoutMs = options.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
    this.clock = options.clock ?? systemClock;
  }

  /** Also while its hooks are still freezing: some may be frozen already, and thaw() of it stops the rest. */
  get frozenToken(): string | undefined {
    return this.current && this.current.phase !== 'thawing' ? this.current.tokenId : undefined;
  }

  freeze(tokenId: string, holdMs: number): Promise<FreezeResult> {
    const held = this.current;
    // The same token again (a command repeated after a reconnect) gets the same answer.
    if (held?.tokenId === tokenId && held.phase !== 'thawing') return held.freezing!;
    if (held) {
      return Promise.resolve({
        state: 'FAILED',
        message: `a freeze is already held for token ${held.tokenId}`,
        hooks: [],
      });
    }
    const f: Freeze = {
      tokenId,
      phase: 'freezing',
      holdMs: holdMs > 0 ? Math.min(holdMs, this.maxHoldMs) : this.defaultHoldMs,
      startedAt: this.clock.now(),
      frozen: [],
      abort: new AbortController(),
    };
    this.current = f;
    this.thawed.delete(tokenId);
    f.freezing = this.runFreeze(f);
    return f.freezing;
  }

  /** A thaw of a freeze that failed answers its rollback (the hooks that had frozen, thawed again). */
  async thaw(tokenId: string): Promise<ThawResult> {
    const f = this.current;
    if (f?.tokenId === tokenId) {
      if (f.phase === 'freezing') {
        // Given up before every hook froze: stop the freeze; its rollback is the thaw.
        f.abort.abort(new Error('a thaw arrived before every hook had frozen'));
        await f.freezing;
        return this.thawed.get(tokenId)!;
      }
      if (f.phase === 'frozen') this.startThaw(f, false);
      return f.thawing!;
    }
    const earlier = this.thawed.get(tokenId);
    if (earlier) return earlier;
    throw new UnknownFreezeError(tokenId);
  }

  private async runFreeze(f: Freeze): Promise<FreezeResult> {
    let hooks: QuiesceHook[];
    try {
      hooks = await this.options.hooks();
    } catch (err) {
      return this.giveUp(f, [], `cannot list the quiesce hooks: ${errorMessage(err)}`);
    }
    if (hooks.length === 0) {
      // Saying FROZEN here would pass a crash-consistent snapshot off as application-consistent.
      return this.giveUp(
        f,
        [],
        'no quiesce hooks configured (nothing to freeze): the snapshot can only be crash-consistent',
      );
    }
    f.startedAt = this.clock.now();
    f.timer = setTimeout(() => this.boundPassed(f), f.holdMs);
    const outcomes: HookOutcome[] = [];
    for (const hook of hooks) {
      const { outcome, value } = await this.step(
        hook.name,
        (signal) => hook.freeze(signal, { tokenId: f.tokenId }),
        f.abort.signal,
        (late) => this.thawLate(hook.name, late),
      );
      outcomes.push(outcome);
      if (!value) return this.giveUp(f, outcomes, `${hook.name} could not freeze: ${outcome.message}`);
      f.frozen.push({ name: hook.name, handle: value });
    }
    f.phase = 'frozen';
    this.options.log?.info('guest applications frozen', { token: f.tokenId, hooks: hooks.length, holdMs: f.holdMs });
    return { state: 'FROZEN', hooks: outcomes, holdMs: f.holdMs };
  }

  /** Ends a freeze that did not complete: thaws the hooks that froze, in reverse, and answers FAILED. */
  private async giveUp(f: Freeze, outcomes: HookOutcome[], message: string): Promise<FreezeResult> {
    clearTimeout(f.timer);
    f.phase = 'thawing';
    const thaw = await this.thawAll(f, false);
    const failedThaws = thaw.hooks.filter((h) => !h.ok);
    const full = failedThaws.length > 0 ? `${message}; and thawing again failed: ${thaw.message}` : message;
    this.options.log?.warn('guest quiesce failed', { token: f.tokenId, message: full });
    return { state: 'FAILED', message: full, hooks: [...outcomes, ...thaw.hooks] };
  }

  private boundPassed(f: Freeze): void {
    if (this.current !== f) return;
    if (f.phase === 'freezing') {
      f.abort.abort(new Error(`the freeze's bound of ${formatDuration(f.holdMs)} passed before every hook had frozen`));
      return;
    }
    if (f.phase !== 'frozen') return;
    this.options.log?.warn('no thaw arrived within the freeze bound: thawing by ourselves', {
      token: f.tokenId,
      holdMs: f.holdMs,
    });
    this.startThaw(f, true);
    void f.thawing!.then((result) => this.options.onAutoThaw?.(f.tokenId, result));
  }

  private startThaw(f: Freeze, autoThawed: boolean): void {
    clearTimeout(f.timer);
    f.phase = 'thawing';
    f.thawing = this.thawAll(f, autoThawed);
  }

  /** Thaws every frozen hook in reverse order; a failing one does not stop the others. Ends the freeze. */
  private async thawAll(f: Freeze, autoThawed: boolean): Promise<ThawResult> {
    const hooks: HookOutcome[] = [];
    for (const { name, handle } of [...f.frozen].reverse()) {
      hooks.push((await this.step(name, (signal) => handle.thaw(signal))).outcome);
    }
    const failed = hooks.filter((h) => !h.ok);
    let message =
      failed.length > 0
        ? failed.map((h) => `${h.name} could not thaw: ${h.message}`).join('; ')
        : `thawed ${hooks.length} hook(s)`;
    if (autoThawed)
      message = `no thaw arrived within the freeze's bound of ${formatDuration(f.holdMs)}, so the agent thawed by itself: ${message}`;
    const result: ThawResult = {
      ok: failed.length === 0,
      message,
      hooks,
      autoThawed,
      frozenMs: this.clock.now() - f.startedAt,
    };
    if (this.current === f) this.current = undefined;
    this.remember(f.tokenId, result);
    if (!result.ok) this.options.log?.error('thawing the guest applications failed', { token: f.tokenId, message });
    return result;
  }

  /** A hook that froze only after its step had been given up: thaw it at once, it is not in the freeze any more. */
  private thawLate(name: string, handle: FrozenHook): void {
    this.options.log?.warn('a hook froze after its time was up: thawing it', { hook: name });
    void this.step(name, (signal) => handle.thaw(signal)).then(({ outcome }) => {
      if (!outcome.ok)
        this.options.log?.error('thawing a hook that froze late failed', { hook: name, message: outcome.message });
    });
  }

  private remember(tokenId: string, result: ThawResult): void {
    this.thawed.set(tokenId, result);
    if (this.thawed.size > REMEMBERED_THAWS) this.thawed.delete(this.thawed.keys().next().value!);
  }

  /**
   * Runs one hook step under the hook timeout (and `outer`, the freeze's abort). A step that does not
   * finish in time is aborted and counted as failed even if it never settles; should it still succeed
   * afterwards, `onLate` gets its value.
   */
  private async step<T>(
    name: string,
    run: (signal: AbortSignal) => Promise<T>,
    outer?: AbortSignal,
    onLate?: (value: T) => void,
  ): Promise<{ outcome: HookOutcome; value?: T }> {
    const started = this.clock.now();
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new Error(`timed out after ${formatDuration(this.hookTimeoutMs)}`)),
      this.hookTimeoutMs,
    );
    const onOuter = () => abort.abort(outer!.reason);
    if (outer?.aborted) onOuter();
    else outer?.addEventListener('abort', onOuter);
    const aborted = new Promise<never>((_resolve, reject) => {
      if (abort.signal.aborted) reject(abort.signal.reason);
      else abort.signal.addEventListener('abort', () => reject(abort.signal.reason));
    });
    let running: Promise<T> | undefined;
    try {
      if (abort.signal.aborted) await aborted;
      running = run(abort.signal);
      const value = await Promise.race([running, aborted]);
      const message = typeof value === 'string' ? value : (value as FrozenHook).message;
      return { outcome: { name, ok: true, message, durationMs: this.clock.now() - started }, value };
    } catch (err) {
      if (abort.signal.aborted)
        running?.then(
          (late) => onLate?.(late),
          () => undefined,
        );
      return { outcome: { name, ok: false, message: errorMessage(err), durationMs: this.clock.now() - started } };
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
      // The race above may leave `aborted` rejected with nobody listening.
      aborted.catch(() => undefined);
    }
  }
}

/**
 * What the agent knows of a freeze the hypervisor's own tools drove (qemu-guest-agent's fsfreeze hook, via
 * `headroom-agent freeze-notice`): whether the VM is frozen, by whom, and until when at most. The daemon
 * tells the coordinator (FreezeNotice) and holds its own scheduled guest jobs until the thaw or the bound.
 */
import type { v1 } from '../../proto';
import type { Clock } from '../../common/util/clock';
import { DEFAULT_FREEZE_HOLD_MS } from '../../common/domain/freeze-hold';
import type { Logger } from '../../common/util/log';
import { MAX_NAME_LENGTH, isValidName } from '../../common/domain/names';

/** Why `source` cannot name a freeze (the coordinator would refuse the notice, and the session with it), or undefined. */
export function freezeSourceProblem(source: string): string | undefined {
  if (isValidName(source)) return undefined;
  return `expected a name (letters, digits and . _ : @ -, at most ${MAX_NAME_LENGTH}), got ${JSON.stringify(source)}`;
}

interface Frozen {
  source: string;
  since: number;
  until: number;
  timer: NodeJS.Timeout;
}

export class FreezeState {
  private current?: Frozen;
  /** Who last froze or thawed: after a reconnect, the thaw (if any) is said again in its name. */
  private lastSource?: string;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get frozen(): boolean {
    return this.current !== undefined;
  }

  /** Frozen now by `source`, for `holdMs` at most (0: the default bound). A second freeze moves the bound. */
  freeze(source: string, holdMs: number): v1.FreezeNotice {
    const hold = holdMs || DEFAULT_FREEZE_HOLD_MS;
    const now = this.clock.now();
    const since = this.current?.since ?? now;
    if (this.current) clearTimeout(this.current.timer);
    // qemu-ga bounds nothing: a caller that never thaws must not stop guest backups for good.
    const timer = setTimeout(() => {
      this.log.warn('no thaw came within the freeze bound: guest jobs may start again', { source, holdMs: hold });
      this.end();
    }, hold);
    timer.unref();
    this.current = { source, since, until: now + hold, timer };
    this.lastSource = source;
    return { frozen: true, source, holdMs: hold };
  }

  /** Thawed by `source`. */
  thaw(source: string): v1.FreezeNotice {
    this.lastSource = source;
    this.end();
    return { frozen: false, source, holdMs: 0 };
  }

  /**
   * What to tell a coordinator after a (re)connection: the freeze in force with what is left of its bound,
   * or the thaw (which it may have missed); undefined when no freeze was ever noticed.
   */
  notice(): v1.FreezeNotice | undefined {
    if (this.lastSource === undefined) return undefined;
    const c = this.current;
    if (!c) return { frozen: false, source: this.lastSource, holdMs: 0 };
    return { frozen: true, source: c.source, holdMs: Math.max(1, c.until - this.clock.now()) };
  }

  /** Resolves at once when not frozen, else at the thaw or when the bound passes. */
  whenThawed(): Promise<void> {
    if (!this.current) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Drops the freeze (at stop, too) and lets every waiter go. */
  end(): void {
    if (this.current) clearTimeout(this.current.timer);
    this.current = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/**
 * What the agent's session needs of application quiescing: freeze the guest's applications for a
 * hypervisor snapshot, thaw them, and thaw by itself once the freeze's bound passes (the coordinator may
 * be dead or unreachable, and a frozen guest must never wait on it). Implemented by ./hook-quiescer.ts.
 */

/** What one hook did; `name` is `fsfreeze:/mnt/data`, `postgresql`, `mysql` or a hooks-directory file name. */
export interface HookOutcome {
  name: string;
  ok: boolean;
  message: string;
  durationMs: number;
}

export type FreezeResult =
  /** Every hook froze; the guest thaws by itself `holdMs` after the freeze began unless thawed first. */
  | { state: 'FROZEN'; hooks: HookOutcome[]; holdMs: number }
  /** A hook failed (or a freeze is already held for another token); the hooks that had frozen were thawed again. */
  | { state: 'FAILED'; message: string; hooks: HookOutcome[] };

export interface ThawResult {
  /** false when a thaw hook failed; the others still ran. */
  ok: boolean;
  message: string;
  /** In the order they ran: the reverse of the freeze. */
  hooks: HookOutcome[];
  /** The bound had passed (or the freeze was given up) and the agent thawed by itself. */
  autoThawed: boolean;
  frozenMs: number;
}

export interface Quiescer {
  /**
   * Runs the freeze hooks in order. `holdMs` 0 means the configured default; it is capped by the configured
   * maximum. The bound counts from the moment the first hook starts.
   */
  freeze(tokenId: string, holdMs: number): Promise<FreezeResult>;
  /**
   * Runs the thaw hooks in reverse order. Thawing a token that is no longer frozen (auto-thawed already)
   * answers the result of that earlier thaw with autoThawed true; an unknown token is an error.
   */
  thaw(tokenId: string): Promise<ThawResult>;
  /** The token frozen now, if any. */
  readonly frozenToken: string | undefined;
}

/** Called when the agent thawed by itself: the session reports it to the coordinator. */
export type AutoThawListener = (tokenId: string, result: ThawResult) => void;

/** thaw() of a token that was never frozen here (nor recently thawed): the caller has the wrong token. */
export class UnknownFreezeError extends Error {
  constructor(readonly tokenId: string) {
    super(`no freeze is held or was recently thawed for token ${tokenId}`);
    this.name = 'UnknownFreezeError';
  }
}

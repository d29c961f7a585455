/**
 * The contract between the quiescer and one application hook: freeze it, and thaw what that freeze did.
 * A freeze returns a handle holding whatever the thaw needs (a held database session), so a hook keeps no
 * state between freezes.
 */

export interface QuiesceHook {
  /** As reported in HookOutcome: `fsfreeze:/mnt/data`, `postgresql`, `mysql`, or a hooks-directory file name. */
  readonly name: string;
  /**
   * Flushes and holds. Rejects with an Error whose message says why when it cannot; must stop what it
   * started (kill its process) once `signal` aborts (the hook's timeout or the freeze's bound).
   */
  freeze(signal: AbortSignal, context: FreezeContext): Promise<FrozenHook>;
}

export interface FreezeContext {
  /** The HYPERVISOR token the freeze is for: labels what a hook keeps (a backup label) and logs. */
  tokenId: string;
}

export interface FrozenHook {
  /** What the freeze did, for the report ("froze /mnt/data", "backup started at 0/3000028"). */
  readonly message: string;
  /** Releases the hold. Rejects with an Error saying why when it cannot; stops once `signal` aborts. */
  thaw(signal: AbortSignal): Promise<string>;
}

/** The hooks of one freeze, in freeze order; called at each freeze so that hooks added since count. */
export type HookList = () => Promise<QuiesceHook[]>;

/**
 * The bound on a freeze the hypervisor's own tools drove (qemu-guest-agent's fsfreeze hook): how long guest
 * backups of the VM are held off without a thaw. Shared by the agent (its own scheduled jobs, and the
 * hold_ms it sends) and the coordinator (the start gate), so both hold for the same time.
 *
 * qemu-ga bounds nothing itself: a caller that dies between guest-fsfreeze-freeze and -thaw leaves the guest
 * frozen until someone thaws it. A hypervisor snapshot freezes for seconds; 10 minutes is ample for a slow
 * one and short enough that a lost thaw does not cost the night's guest backups. An hour is the most anyone
 * may ask: past that, the freeze is a fault to be seen, not a state to wait out.
 */
export const DEFAULT_FREEZE_HOLD_MS = 10 * 60_000;
export const MAX_FREEZE_HOLD_MS = 60 * 60_000;

/** What the agent says a freeze came from unless told otherwise. */
export const DEFAULT_FREEZE_SOURCE = 'qemu-guest-agent';

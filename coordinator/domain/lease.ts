/**
 * The domain's vocabulary: what a lease (token) and a waiting request are. Plain data, no behaviour, so
 * that the lessor, the store and the RPC adapters share one shape.
 */

export type TokenKind = 'GUEST' | 'HYPERVISOR';
export const TOKEN_KINDS: readonly TokenKind[] = ['GUEST', 'HYPERVISOR'];

export function otherKind(kind: TokenKind): TokenKind {
  return kind === 'GUEST' ? 'HYPERVISOR' : 'GUEST';
}

/** What a backup may spend; 0 means unlimited. */
export interface Budget {
  ioBytesPerSec: number;
  cpuPercent: number;
}

export const UNLIMITED: Budget = Object.freeze({ ioBytesPerSec: 0, cpuPercent: 0 });

/** All times are Clock milliseconds (monotonic, Unix-anchored). 0 means "none" for the window end. */
export interface Slot {
  start: number;
  expectedEnd: number;
  windowEnd: number;
}

/** An active lease. `(tokenId, fencing)` is what the holder presents to renew and release. */
export interface Lease {
  tokenId: string;
  requestId: string;
  fencing: number;
  kind: TokenKind;
  host: string;
  vm: string;
  job: string;
  priority: number;
  ttlMs: number;
  grantedAt: number;
  expiresAt: number;
  slot: Slot;
  /** Its target's share included (targets.ts): what its I/O counts for against the target. */
  budget: Budget;
  /** The shared target it writes to (coordinator.yaml's `targets`); absent or empty: none. */
  target?: string;
}

/** What a caller asks for. Validated by the RPC adapter before it reaches the domain. */
export interface AcquireInput {
  requestId: string;
  kind: TokenKind;
  host: string;
  vm: string;
  job: string;
  expectedDurationMs: number;
  /** 0: no limit. */
  latestStart: number;
  /** 0: no window. */
  windowEnd: number;
  priority: number;
  /** 0: the host policy's default. */
  ttlMs: number;
  /** The shared target it will write to; absent or empty: none. */
  target?: string;
}

/** A request waiting in a host's queue. `seq` orders arrivals across both kinds. */
export interface PendingRequest extends AcquireInput {
  queuedAt: number;
  seq: number;
}

export interface Outcome {
  success: boolean;
  /** Bytes the command wrote to storage, as its holder measured them; absent when it does not know. */
  bytes?: number;
  durationMs: number;
  exitCode: number;
  message: string;
  /** Hypervisor backups: what the snapshot achieved, as the holder says; absent when it says nothing. */
  consistency?: Consistency;
}

/** How consistent a hypervisor snapshot is: as after a power cut, or with the guest's applications quiesced. */
export type Consistency = 'CRASH' | 'APPLICATION';

/** How a lease ended. */
export type EndState = 'released' | 'expired' | 'revoked';

/** A request id whose token has ended: a retry of it must not yield a second token. */
export interface EndedRequest {
  requestId: string;
  tokenId: string;
  state: EndState;
  endedAt: number;
}

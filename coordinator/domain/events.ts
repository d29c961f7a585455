/**
 * What the lessor's operations cause. The lessor does no I/O: it returns these events, the store commits
 * them (history and durable state) before anyone is answered, and the RPC layer tells the waiters.
 */
import type { EndState, Lease, Outcome, PendingRequest } from './lease';
import type { HostPolicy } from './policy';

export type DenyReason = 'WINDOW_CLOSED' | 'REQUEST_ID_USED' | 'COORDINATOR_STOPPING' | 'VM_MIGRATED_AWAY';

export type LessorEvent =
  | { type: 'host-added'; at: number; host: string; policy: HostPolicy }
  /**
   * `forced`: why it started on a reduced budget despite the load (start-gate.ts). `queuedAt`: when its
   * request arrived, so that the wait is `at - queuedAt` (metrics); absent in events made elsewhere.
   */
  | { type: 'granted'; at: number; lease: Lease; queuedAt?: number; forced?: string }
  | { type: 'renewed'; at: number; lease: Lease }
  | { type: 'restored'; at: number; lease: Lease }
  | { type: 'released'; at: number; lease: Lease; outcome: Outcome }
  | { type: 'expired'; at: number; lease: Lease }
  | { type: 'revoked'; at: number; lease: Lease; reason: string }
  | { type: 'denied'; at: number; request: PendingRequest; reason: DenyReason; message: string }
  | { type: 'cancelled'; at: number; request: PendingRequest }
  | { type: 'host-paused'; at: number; host: string; reason: string }
  | { type: 'host-resumed'; at: number; host: string }
  | { type: 'policy-changed'; at: number; host: string; policy: HostPolicy }
  /**
   * A VM frozen by the hypervisor's own tools (start-gate.ts holds its GUEST grants until `until`), and its
   * end: thawed, or `lapsed` when the bound passed without a thaw. `guests`: its GUEST backups running then,
   * paused for the freeze and resumed after it.
   */
  | { type: 'vm-frozen'; at: number; host: string; vm: string; source: string; until: number; guests: Lease[] }
  | {
      type: 'vm-thawed';
      at: number;
      host: string;
      vm: string;
      source: string;
      since: number;
      lapsed: boolean;
      guests: Lease[];
    }
  /**
   * A migration of a VM to or from this host started (placement), and its end. `hypervisor`: its HYPERVISOR
   * tokens active then — libvirt refuses to migrate a domain with a backup job, so a token stays valid while
   * its VM is here; one whose VM has left is revoked (a `revoked` event follows).
   */
  | {
      type: 'vm-migrating';
      at: number;
      host: string;
      vm: string;
      name: string;
      direction: 'in' | 'out';
      hypervisor: Lease[];
    }
  | {
      type: 'vm-migrated';
      at: number;
      host: string;
      vm: string;
      name: string;
      direction: 'in' | 'out';
      outcome: 'arrived' | 'left' | 'failed';
      since: number;
    }
  | QuiesceEvent;

/**
 * What became of a guest's quiesce under a HYPERVISOR token (../quiesce-broker.ts): recorded in the history,
 * changing no lease. `hooks` names the hooks as they ran; `autoThawed`: by the agent's own bound, not our word.
 */
export type QuiesceEvent =
  | { type: 'quiesced'; at: number; lease: Lease; hooks: string[]; holdMs: number }
  | { type: 'quiesce-failed'; at: number; lease: Lease; reason: string }
  | { type: 'thawed'; at: number; lease: Lease; autoThawed: boolean; frozenMs: number; message: string };

/** Events that end a lease, with the state the token is left in. */
export const END_STATE: Partial<Record<LessorEvent['type'], EndState>> = {
  released: 'released',
  expired: 'expired',
  revoked: 'revoked',
};

export function hostOf(event: LessorEvent): string {
  if ('lease' in event) return event.lease.host;
  if ('request' in event) return event.request.host;
  return event.host;
}

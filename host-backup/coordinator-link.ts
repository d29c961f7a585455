/**
 * What the host-side runner asks of the coordinator: the token calls, and the few admin calls that tell
 * it about its host (the policy, a revoke in the history). headroomctl gives its own connection; anything
 * else with one can.
 */
import type { AdminClient, TokenClient } from '../common/client/connection';
import type { ConnectionContext } from '../common/client/tls-diagnosis';
import type * as v1 from '../proto/generated/headroom/v1';

export interface CoordinatorLink {
  /** The coordinator's address, for messages. */
  readonly address: string;
  /** How the link connects: refusals no retry can cure are told apart (tls-diagnosis.ts). */
  readonly connection?: ConnectionContext;
  /** The TokenService client (the connection may be opened on first use). */
  token(): TokenClient;
  /** The AdminService client, for its streams. */
  admin(): AdminClient;
  /** AdminService.GetPolicy for `host`, with the unary deadline. */
  getPolicy(host: string): Promise<v1.Policy__Output>;
  /** AdminService.ListHistory, with the unary deadline. */
  listHistory(request: v1.ListHistoryRequest): Promise<v1.ListHistoryResponse__Output>;
}

/**
 * Tells host-backup at once when an administrator revokes its token. An agent hears of a revoke through
 * its session; headroomctl has none, so it watches the host's history for the REVOKED event of its token.
 * Best effort: when the watch fails, the next renewal is refused and the guarded run stops the command
 * anyway, only up to a third of the TTL later.
 */
import type * as grpc from '@grpc/grpc-js';
import type { HistoryEvent__Output, Token__Output } from '../proto/generated/headroom/v1';
import { errorText } from '../common/client/call-status';
import type { Logger } from '../common/util/log';
import type { CoordinatorLink } from './coordinator-link';

/** How far back to look for the token's GRANTED event, which is where the watch starts. */
const LOOKBACK_EVENTS = 100;

/**
 * Calls `onRevoked(detail)` at most once if `token` is revoked. Returns a function that stops watching;
 * call it when the run ends.
 */
export function watchRevocation(
  link: CoordinatorLink,
  log: Logger,
  token: Token__Output,
  onRevoked: (detail: string) => void,
): () => void {
  let stopped = false;
  let call: grpc.ClientReadableStream<HistoryEvent__Output> | undefined;
  const check = (e: HistoryEvent__Output) => {
    if (stopped || e.type !== 'HISTORY_EVENT_TYPE_REVOKED' || e.tokenId !== token.tokenId) return;
    stop();
    onRevoked(e.detail);
  };
  const stop = () => {
    stopped = true;
    call?.cancel();
  };

  void (async () => {
    try {
      const { events } = await link.listHistory({ host: token.host, vm: token.vm, limit: LOOKBACK_EVENTS });
      if (stopped) return;
      events.forEach(check);
      if (stopped) return;
      // Everything after the grant; without it in sight (it cannot be older than what we saw), after the newest.
      const grant = events.find((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' && e.tokenId === token.tokenId);
      const afterSeq = grant?.seq ?? Math.max(0, ...events.map((e) => e.seq));
      const c = link.admin().WatchHistory({ host: token.host, afterSeq });
      call = c;
      log.debug('watching the history for a revoke of the token', { afterSeq });
      c.on('data', check);
      c.on('error', (err: grpc.ServiceError) => {
        if (!stopped) log.debug('cannot watch for a revoke; relying on renewals', { error: errorText(err) });
      });
    } catch (err) {
      if (!stopped) log.debug('cannot watch for a revoke; relying on renewals', { error: (err as Error).message });
    }
  })();
  return stop;
}

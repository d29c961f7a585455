/**
 * What one peer, and all peers together, may hold of the coordinator: concurrent streams, how long a
 * session may stay silent before its hello, how far a history watcher may fall behind. Each bound keeps
 * the coordinator's memory proportional to something it chose, not to what a hostile or broken client
 * sends. (The largest message either side accepts, 1 MiB, is MAX_MESSAGE_BYTES in common/client/connection.ts,
 * shared with the clients.)
 */

/** A session that has not said hello by then is closed: it holds resources and tells us nothing. */
export const HELLO_TIMEOUT_MS = 10_000;

/**
 * Calls in flight on one connection (streams and unary calls alike), advertised as HTTP/2's
 * SETTINGS_MAX_CONCURRENT_STREAMS: a client queues the calls beyond it until one ends (grpc-js, grpc-go and
 * etcd's clients do) instead of having them refused. A client that ignores the setting loses its
 * connection: the transport (Node's http2) answers the extra stream with GOAWAY, never processing it, and
 * closes the connection with all its calls. So one connection pins at most this many calls: about 4.5 MiB of waiting Acquires (about 18 KiB each). Not lower, because the client's
 * queue is first come, first served: once every slot holds an Acquire waiting for a token, the Releases
 * and Renews that would free one wait behind them on the same channel. So the limit sits above the most a
 * client has been seen to multiplex (200 acquire/release cycles on one channel); an agent needs a session
 * and an acquire or two, headroomctl one watch.
 */
export const MAX_STREAMS_PER_CONNECTION = 256;

/**
 * Concurrent calls of each long-lived method, all connections together. Sessions: one per VM, with room
 * for hosts far larger than bench:load's 2,000. Acquires: every VM waiting at once, the same. Watches:
 * people and tools following the history; few, and each may hold a backlog of MAX_WATCH_BACKLOG events.
 */
export const MAX_CONCURRENT_CALLS: Readonly<Record<string, number>> = {
  '/headroom.v1.AgentService/Session': 10_000,
  '/headroom.v1.TokenService/Acquire': 10_000,
  '/headroom.v1.AdminService/WatchHistory': 64,
};

/**
 * Events a history watcher may have waiting beyond its first catch-up (which holds up to one ListHistory
 * answer) while it does not read. A watcher that falls further behind is ended with RESOURCE_EXHAUSTED
 * and the sequence number to watch again from, after the events it was sent: nothing is lost, and a
 * reader that never reads costs at most this many events.
 */
export const MAX_WATCH_BACKLOG = 1_000;

/**
 * Messages waiting to be written to one agent's session (commands: grant notices, revokes, budgets). An
 * agent that reads nothing while more pile up is closed with RESOURCE_EXHAUSTED; it reconnects and says
 * hello again, and its tokens are unaffected.
 */
export const MAX_SESSION_BACKLOG = 256;

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
 * Concurrent streaming calls (sessions, waiting acquires, history watches, health watches) on one
 * connection. An agent needs one session and an acquire or two; headroomctl one watch. Beyond this a new
 * stream is refused with RESOURCE_EXHAUSTED, so one connection cannot pin unbounded state.
 */
export const MAX_STREAMS_PER_CONNECTION = 64;

/**
 * HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: the transport's own bound on calls (unary ones too) in flight on
 * one connection. Above MAX_STREAMS_PER_CONNECTION so that a well-behaved client that opens too many
 * streams hears RESOURCE_EXHAUSTED from us rather than having its calls held back by the transport.
 */
export const MAX_HTTP2_STREAMS_PER_CONNECTION = 128;

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

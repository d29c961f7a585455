/**
 * What a waiting token request waits for and what a grant gave, in the words that exec (headroom-agent),
 * host-backup (headroomctl) and the agent daemon's log all use: the queue position, what holds the request
 * back (the coordinator's reason) and the planned start, in the one time format of human output.
 */
import { formatDuration } from '../util/duration';
import { formatClock, formatClockRelative } from '../util/human';
import type { Queued__Output, Token__Output } from '../../proto/generated/headroom/v1';

/** "queue position 2, a HYPERVISOR backup of vm1 holds the host; planned start 14:05:00 (in 3m)". */
export function describeQueued(q: Queued__Output, now: number): string {
  const parts = [`queue position ${q.position}`];
  if (q.waitingFor) parts.push(q.waitingFor);
  const start = q.estimatedStartUnixMs ? `; planned start ${formatClockRelative(q.estimatedStartUnixMs, now)}` : '';
  return parts.join(', ') + start;
}

/** What makes a queue update news: the same position, reason and planned start (to the second) is not. */
export function queuedKey(q: Queued__Output): string {
  return `${q.position}|${q.waitingFor}|${Math.round(q.estimatedStartUnixMs / 1000)}`;
}

/**
 * "granted token T (fencing 17) on host-a at 14:05:00: planned start 14:05:00, expected end 14:35:00,
 * window ends 15:00:00, lease 30s renewed while it runs". Parts the token lacks (no expected duration, no
 * window) are left out rather than shown as placeholders.
 */
export function describeGrant(t: Token__Output, now: number): string {
  const slot = t.slot;
  const parts: string[] = [];
  if (slot?.startUnixMs) parts.push(`planned start ${formatClock(slot.startUnixMs, now)}`);
  if (slot && slot.expectedEndUnixMs > slot.startUnixMs)
    parts.push(`expected end ${formatClock(slot.expectedEndUnixMs, now)}`);
  if (slot?.windowEndUnixMs) parts.push(`window ends ${formatClock(slot.windowEndUnixMs, now)}`);
  if (t.ttlMs) parts.push(`lease ${formatDuration(t.ttlMs)} renewed while it runs`);
  const granted = `granted token ${t.tokenId} (fencing ${t.fencing}) on ${t.host} at ${formatClock(t.grantedUnixMs || now, now)}`;
  return parts.length ? `${granted}: ${parts.join(', ')}` : granted;
}

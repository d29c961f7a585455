/**
 * Certificate lifetimes as people and schedulers see them: "expires in 364 days", when an agent renews
 * (a fraction of the lifetime), and how early the coordinator warns. Pure: every function takes `now`.
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** An agent renews its certificate once this fraction of its lifetime has passed (agent.yaml tls.renewAtFraction). */
export const DEFAULT_RENEW_AT_FRACTION = 2 / 3;

/** The coordinator warns this long before its server certificate or its CA expires. */
export const EXPIRY_WARNING_MS = 30 * DAY_MS;

function count(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** A span rounded down to its largest whole unit: "364 days", "5 hours", "1 minute", "less than a minute". */
export function humanSpan(ms: number): string {
  const abs = Math.abs(ms);
  if (abs >= DAY_MS) return count(Math.floor(abs / DAY_MS), 'day');
  if (abs >= HOUR_MS) return count(Math.floor(abs / HOUR_MS), 'hour');
  if (abs >= MINUTE_MS) return count(Math.floor(abs / MINUTE_MS), 'minute');
  return 'less than a minute';
}

/** "expires in 364 days" or "expired 3 days ago". */
export function describeExpiry(notAfter: number, now: number): string {
  return notAfter > now ? `expires in ${humanSpan(notAfter - now)}` : `expired ${humanSpan(now - notAfter)} ago`;
}

/** When a certificate valid from `notBefore` to `notAfter` is due for renewal. */
export function renewalPoint(notBefore: number, notAfter: number, fraction = DEFAULT_RENEW_AT_FRACTION): number {
  return notBefore + Math.floor((notAfter - notBefore) * fraction);
}

/** True when `notAfter` is within `withinMs` of `now` (or past). */
export function expiresWithin(notAfter: number, now: number, withinMs = EXPIRY_WARNING_MS): boolean {
  return notAfter - now <= withinMs;
}

import { strict as assert } from 'node:assert';
import { failSafeDeadline, leaseTiming, renewRetryDelay } from '../../../../common/client/lease-renewer';

// The Renewer itself is tested through the guarded run (guarded-run.test.ts), on fake timers.

const T0 = Date.UTC(2026, 0, 5, 2, 0, 0);

describe('lease timing', () => {
  it('renews at a third of the TTL and keeps a safety margin of max(1 s, TTL/6)', () => {
    assert.deepEqual(leaseTiming(30_000), { renewIntervalMs: 10_000, safetyMarginMs: 5_000 });
    assert.deepEqual(leaseTiming(3_000), { renewIntervalMs: 1_000, safetyMarginMs: 1_000 });
    assert.deepEqual(leaseTiming(120_000), { renewIntervalMs: 40_000, safetyMarginMs: 20_000 });
    // A TTL too short for the 1 s margin keeps half of it.
    assert.deepEqual(leaseTiming(1_000), { renewIntervalMs: 333, safetyMarginMs: 500 });
  });

  it('puts the fail-safe deadline before the expiry by the margin, after the next renewal', () => {
    for (const ttl of [1_000, 3_000, 30_000, 600_000]) {
      const deadline = failSafeDeadline(T0 + ttl, ttl);
      assert.equal(deadline, T0 + ttl - leaseTiming(ttl).safetyMarginMs);
      assert.ok(deadline < T0 + ttl, 'before the lease expires');
      assert.ok(deadline > T0 + leaseTiming(ttl).renewIntervalMs, 'after the first renewal was due');
    }
  });

  it('retries a failed renewal quickly, never slower than TTL/6', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => renewRetryDelay(n, 30_000)),
      [500, 1_000, 2_000, 4_000, 5_000],
    );
    assert.deepEqual(
      [1, 2].map((n) => renewRetryDelay(n, 1_200)),
      [250, 250],
    );
  });
});

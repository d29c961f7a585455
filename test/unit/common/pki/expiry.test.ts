import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { describeExpiry, expiresWithin, humanSpan, renewalPoint } from '../../../../common/pki/expiry';

const DAY = 86_400_000;

describe('certificate expiry for people and schedulers', () => {
  it('says how long until, or since, the expiry in the largest whole unit', () => {
    const now = Date.UTC(2026, 0, 1);
    assert.equal(describeExpiry(now + 365 * DAY - 1, now), 'expires in 364 days');
    assert.equal(describeExpiry(now + DAY, now), 'expires in 1 day');
    assert.equal(describeExpiry(now + 5 * 3_600_000 + 59_000, now), 'expires in 5 hours');
    assert.equal(describeExpiry(now + 61_000, now), 'expires in 1 minute');
    assert.equal(describeExpiry(now + 1_000, now), 'expires in less than a minute');
    assert.equal(describeExpiry(now - 3 * DAY - 10, now), 'expired 3 days ago');
    assert.equal(describeExpiry(now, now), 'expired less than a minute ago');
  });

  it('never prints a raw number of milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), (ms) => {
        assert.match(humanSpan(ms), /^(\d+ (day|hour|minute)s?|less than a minute)$/);
      }),
    );
  });

  it('puts the renewal point at the fraction of the lifetime, 2/3 by default', () => {
    assert.equal(renewalPoint(0, 300 * DAY), 200 * DAY);
    assert.equal(renewalPoint(1_000, 1_000 + 100, 0.5), 1_050);
  });

  it('warns within 30 days of the expiry by default, and after it', () => {
    const now = 1_000 * DAY;
    assert.ok(expiresWithin(now + 30 * DAY, now));
    assert.ok(!expiresWithin(now + 31 * DAY, now));
    assert.ok(expiresWithin(now - DAY, now));
    assert.ok(expiresWithin(now + 5 * DAY, now, 7 * DAY));
  });
});

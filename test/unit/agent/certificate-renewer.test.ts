import { strict as assert } from 'node:assert';
import { renewalDelay } from '../../../agent/certificate-renewer';

const DAY = 86_400_000;

describe("the agent's certificate renewal point", () => {
  const cert = { notBefore: 0, notAfter: 365 * DAY };

  it('waits until 2/3 of the lifetime (or the configured fraction) has passed', () => {
    assert.equal(renewalDelay(cert, 2 / 3, 0), Math.floor((365 * DAY * 2) / 3));
    assert.equal(renewalDelay(cert, 0.5, 100 * DAY), 82.5 * DAY);
  });

  it('is due at once past that point, and past the expiry', () => {
    assert.equal(renewalDelay(cert, 2 / 3, 250 * DAY), 0);
    assert.equal(renewalDelay(cert, 2 / 3, 400 * DAY), 0);
  });
});

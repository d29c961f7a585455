import { strict as assert } from 'node:assert';
import {
  TokenFormatError,
  formatEnrolmentToken,
  hashSecret,
  newEnrolmentToken,
  normalizeFingerprint,
  parseEnrolmentToken,
} from '../../../../common/pki/enrolment-token';

const FP = 'ab'.repeat(32);

describe('enrolment token text', () => {
  it('round-trips: what enroll create prints, the agent parses back', () => {
    const t = newEnrolmentToken(FP);
    const text = formatEnrolmentToken(t);
    assert.match(text, /^hre1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/);
    assert.deepEqual(parseEnrolmentToken(` ${text}\n`), t);
  });

  it('makes a new secret and id every time', () => {
    const a = newEnrolmentToken(FP);
    const b = newEnrolmentToken(FP);
    assert.notEqual(a.secret, b.secret);
    assert.notEqual(a.id, b.id);
  });

  it('takes the fingerprint as openssl and Node print it (colons, upper case)', () => {
    const colons = FP.toUpperCase().match(/../g)!.join(':');
    assert.equal(newEnrolmentToken(colons).caFingerprint, FP);
    assert.equal(normalizeFingerprint(colons), FP);
  });

  it('says which part of a malformed token is wrong, without echoing the secret', () => {
    const good = formatEnrolmentToken(newEnrolmentToken(FP));
    const [, id, secret] = good.split('.');
    const cases: [string, RegExp][] = [
      ['', /not an enrolment token/],
      ['kubeadm.abcdef.0123456789abcdef', /not an enrolment token/],
      [`hre1.${id}.${secret}`, /not an enrolment token/],
      [`hre1.XYZ.${secret}.${FP}`, /the id is not 16 hex digits/],
      [`hre1.${id}.short.${FP}`, /the secret is malformed/],
      [`hre1.${id}.${secret}.${FP.slice(2)}`, /the CA fingerprint is not 64 hex digits/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseEnrolmentToken(text),
        (e: Error) => e instanceof TokenFormatError && message.test(e.message) && !e.message.includes(secret),
        text,
      );
    }
  });

  it('stores the secret as its SHA-256 only', () => {
    const h = hashSecret('s3cret');
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.notEqual(h, hashSecret('s3cret2'));
    assert.ok(!h.includes('s3cret'));
  });
});

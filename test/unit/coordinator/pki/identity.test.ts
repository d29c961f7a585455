import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import {
  type Identity,
  IdentityError,
  describeIdentity,
  identityOfCertificate,
  identityUri,
  memberOfCertificate,
  memberUri,
  parseIdentityUri,
} from '../../../../coordinator/pki/identity';
import { propertyRuns } from '../../../helpers/property-runs';

/** Names as the coordinator accepts them: letters, digits, . _ : @ - (first a letter or digit). */
const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,40}$/);
const identity: fc.Arbitrary<Identity> = fc.oneof(
  fc.record({ role: fc.constant('agent' as const), host: name, vm: name }),
  fc.record({ role: fc.constant('host' as const), host: name }),
  fc.record({ role: fc.constant('admin' as const), name }),
);

describe('certificate identities (headroom:// SAN URIs)', () => {
  it('writes the three forms', () => {
    assert.equal(identityUri({ role: 'agent', host: 'pve-1', vm: 'web-1' }), 'headroom://host/pve-1/vm/web-1');
    assert.equal(identityUri({ role: 'host', host: 'pve-1' }), 'headroom://host/pve-1');
    assert.equal(identityUri({ role: 'admin', name: 'ops' }), 'headroom://admin/ops');
  });

  it('parses back every identity it writes, whatever the names hold', () => {
    fc.assert(
      fc.property(identity, (id) => assert.deepEqual(parseIdentityUri(identityUri(id)), { ...id })),
      { numRuns: propertyRuns(100) },
    );
  });

  it('escapes names, so that ":" and "@" in a name cannot make another identity', () => {
    const uri = identityUri({ role: 'agent', host: 'a:b', vm: 'x@y' });
    assert.equal(uri, 'headroom://host/a%3Ab/vm/x%40y');
  });

  it('refuses anything else, naming it', () => {
    for (const bad of [
      'https://host/pve-1',
      'headroom://host/pve-1/vm',
      'headroom://host/pve-1/disk/d1',
      'headroom://admin/',
      'headroom://host/..%2Fetc',
      'headroom://host/a/vm/b/c',
      'headroom://host/%E0%A4%A',
      'headroom://root/x',
    ]) {
      assert.throws(() => parseIdentityUri(bad), IdentityError, bad);
    }
  });

  it('finds the one identity in a certificate subject alternative name as Node prints it', () => {
    assert.deepEqual(identityOfCertificate({ subjectaltname: 'DNS:vm1.example, URI:headroom://host/h/vm/v' }), {
      role: 'agent',
      host: 'h',
      vm: 'v',
    });
    assert.throws(
      () => identityOfCertificate({ subjectaltname: 'DNS:vm1.example' }),
      /names no headroom:\/\/ identity/,
    );
    assert.throws(
      () => identityOfCertificate({ subjectaltname: undefined as unknown as string }),
      /names no headroom:\/\/ identity/,
    );
    assert.throws(
      () => identityOfCertificate({ subjectaltname: 'URI:headroom://admin/a, URI:headroom://host/h' }),
      /more than one headroom:\/\/ identity/,
    );
  });

  it('tells a cluster member certificate apart from a caller: no caller identity, its host as member', () => {
    const san = `URI:${memberUri('pve:2')}`;
    assert.equal(san, 'URI:headroom://member/pve%3A2');
    assert.equal(memberOfCertificate({ subjectaltname: san }), 'pve:2');
    assert.throws(() => identityOfCertificate({ subjectaltname: san }), /is not headroom:\/\/host\/H/);
    assert.equal(memberOfCertificate({ subjectaltname: 'URI:headroom://admin/ops' }), undefined);
    assert.equal(memberOfCertificate({ subjectaltname: `${san}, URI:headroom://admin/ops` }), undefined);
    assert.equal(memberOfCertificate({ subjectaltname: 'URI:headroom://member/a%2Fb' }), undefined);
    assert.throws(() => memberUri('a/b'), IdentityError);
  });

  it('describes identities for logs', () => {
    assert.equal(describeIdentity({ role: 'agent', host: 'h', vm: 'v' }), 'agent v@h');
    assert.equal(describeIdentity({ role: 'host', host: 'h' }), 'host h');
    assert.equal(describeIdentity({ role: 'admin', name: 'ops' }), 'admin ops');
  });
});

import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { type ConnectionContext, describeDiagnosis, diagnoseCall } from '../../../../common/client/tls-diagnosis';

const names = { ca: 'CA-SETTING', clientCertificate: 'CERT-SETTING', address: 'ADDRESS-SETTING' };
const overTls: ConnectionContext = { address: '127.0.0.1:7400', tls: true, names };
const plaintext: ConnectionContext = { ...overTls, tls: false };
// As grpc-js words UNAVAILABLE for a connection that failed before any call went out.
const lastError = (text: string) => `No connection established. Last error: ${text}. Resolution note: `;
const unavailable = (text: string, side = overTls) => diagnoseCall(grpc.status.UNAVAILABLE, lastError(text), side);

describe('telling TLS and identity failures from unreachability', () => {
  it('blames the CA for a server certificate this client does not trust, and names the CA setting', () => {
    for (const text of [
      'Error: self-signed certificate in certificate chain',
      'Error: unable to verify the first certificate',
      'Error: unable to get local issuer certificate',
      'Error: certificate has expired',
    ]) {
      const d = unavailable(text)!;
      assert.equal(d.failure, 'untrusted-server', text);
      assert.ok(d.permanent);
      assert.match(
        describeDiagnosis(d),
        /certificate at 127\.0\.0\.1:7400 is not trusted: .*; give the CA .*: CA-SETTING$/,
      );
    }
  });

  it('blames the address when the server certificate does not carry it', () => {
    const d = unavailable(
      "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: localhost. is not in the cert's altnames: DNS:coordinator.example",
    )!;
    assert.equal(d.failure, 'server-name');
    assert.ok(d.permanent);
    assert.match(d.fix, /ADDRESS-SETTING/);
  });

  it('says the coordinator does not speak TLS, in OpenSSL words without its source line', () => {
    const d = unavailable(
      'Error: 80DCA86ED97F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:',
    )!;
    assert.equal(d.failure, 'tls-to-plaintext');
    assert.match(d.cause, /does not speak TLS \(wrong version number\)$/);
  });

  it('says a plaintext connection was closed by a TLS coordinator, naming both settings', () => {
    const d = unavailable('Failed to connect (2026-12-06T04:50:16.550Z)', plaintext)!;
    assert.equal(d.failure, 'plaintext-to-tls');
    assert.ok(d.permanent);
    assert.match(d.cause, /\(Failed to connect\)$/);
    assert.match(d.fix, /CA-SETTING.*CERT-SETTING/);
  });

  it('asks for a client certificate when the TLS handshake wants one', () => {
    const d = unavailable(
      'Error: 40C7:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:x.c:1:',
    )!;
    assert.equal(d.failure, 'client-certificate');
    assert.match(d.fix, /CERT-SETTING/);
  });

  it("keeps the coordinator's own words for the access rule's refusals, and adds the fix", () => {
    const unauth = diagnoseCall(
      grpc.status.UNAUTHENTICATED,
      "a client certificate issued by this coordinator's CA is required",
      overTls,
    )!;
    assert.equal(unauth.failure, 'client-certificate');
    assert.equal(
      describeDiagnosis(unauth),
      "a client certificate issued by this coordinator's CA is required; give a client certificate and key issued by the coordinator's CA: CERT-SETTING",
    );
    const denied = diagnoseCall(grpc.status.PERMISSION_DENIED, 'AdminService.ListHosts needs the admin role', overTls)!;
    assert.equal(denied.failure, 'access-denied');
    assert.ok(denied.permanent);
  });

  it('calls a refused, unresolved or silent coordinator unreachable: worth retrying, no fix', () => {
    for (const [text, side] of [
      ['Error: connect ECONNREFUSED 127.0.0.1:7400', overTls],
      ['Error: connect ECONNREFUSED 127.0.0.1:7400', plaintext],
      ['Error: getaddrinfo ENOTFOUND nowhere.example', overTls],
      ['Error: read ECONNRESET', plaintext],
    ] as const) {
      const d = unavailable(text, side)!;
      assert.equal(d.failure, 'unreachable', text);
      assert.ok(!d.permanent);
      assert.equal(
        describeDiagnosis(d),
        `the coordinator at 127.0.0.1:7400 is unreachable (${text.replace('Error: ', '')})`,
      );
    }
    const late = diagnoseCall(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded', overTls)!;
    assert.equal(late.failure, 'timeout');
    assert.ok(!late.permanent);
  });

  it("leaves the coordinator's answers to the request itself alone", () => {
    for (const code of [grpc.status.NOT_FOUND, grpc.status.FAILED_PRECONDITION, grpc.status.INVALID_ARGUMENT]) {
      assert.equal(diagnoseCall(code, 'no such token', overTls), undefined);
    }
  });
});

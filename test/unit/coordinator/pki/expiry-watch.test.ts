import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { createLogger } from '../../../../common/util/log';
import {
  ExpiryWatch,
  type WatchedCertificate,
  clientCertificatesToWatch,
  expiryWarnings,
} from '../../../../coordinator/pki/expiry-watch';
import type { CertificateRecord } from '../../../../coordinator/pki/pki-store';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

function watched(serverDays: number, caDays: number): WatchedCertificate[] {
  return [
    { what: 'server certificate', file: '/pki/server.pem', notAfter: NOW + serverDays * DAY, pkiDir: '/pki' },
    { what: 'CA certificate', file: '/pki/ca.pem', notAfter: NOW + caDays * DAY, pkiDir: '/pki' },
  ];
}

describe('warnings ahead of the expiry of the server certificate and the CA', () => {
  it('names the file and the command that fixes a server certificate within 30 days of its expiry', () => {
    const [w, ...rest] = expiryWarnings(watched(10, 3000), NOW);
    assert.equal(rest.length, 0);
    assert.equal(w.message, "the coordinator's server certificate expires in 10 days");
    assert.equal(w.file, '/pki/server.pem');
    assert.match(w.fix, /^headroomctl pki reissue-server --dir \/pki, then kill -HUP the coordinator/);
  });

  it('says what to do about a CA near its expiry, and says nothing for certificates far from theirs', () => {
    assert.deepEqual(expiryWarnings(watched(400, 3000), NOW), []);
    const [w] = expiryWarnings(watched(400, 20), NOW);
    assert.equal(w.message, "the coordinator's CA certificate expires in 20 days");
    assert.match(w.fix, /make a new CA and enrol every client again/);
    assert.equal(
      expiryWarnings(watched(-2, 3000), NOW)[0].message,
      "the coordinator's server certificate expired 2 days ago",
    );
  });

  it('logs a WARN at start and again every day', () => {
    const clock = sinon.useFakeTimers({ now: NOW, toFake: ['setInterval', 'clearInterval', 'Date'] });
    try {
      const lines: string[] = [];
      const watch = new ExpiryWatch(
        () => watched(10, 3000),
        createLogger({ level: 'info', write: (l) => lines.push(l) }),
      );
      watch.start();
      assert.equal(lines.length, 1);
      assert.match(lines[0], /WARN .*server certificate expires in 10 days .*file=\/pki\/server\.pem/);
      clock.tick(DAY);
      assert.equal(lines.length, 2);
      watch.stop();
      clock.tick(3 * DAY);
      assert.equal(lines.length, 2);
    } finally {
      clock.restore();
    }
  });

  it('watches the latest certificate of each host and admin identity, not the agents (they renew themselves)', () => {
    const cert = (serial: string, identity: CertificateRecord['identity'], days: number): CertificateRecord => ({
      serial,
      identity,
      notBefore: 0,
      notAfter: NOW + days * DAY,
    });
    const watchedOnes = clientCertificatesToWatch(
      [
        cert('h-old', { role: 'host', host: 'pve-1' }, 5),
        cert('h-new', { role: 'host', host: 'pve-1' }, 360),
        cert('adm', { role: 'admin', name: 'ops' }, 12),
        cert('ag', { role: 'agent', host: 'pve-1', vm: 'web' }, 1),
      ],
      '/pki',
    );
    assert.deepEqual(
      watchedOnes.map((w) => w.identity),
      ['host pve-1 (serial h-new)', 'admin ops (serial adm)'],
    );
    const [w, ...rest] = expiryWarnings(watchedOnes, NOW);
    assert.equal(rest.length, 0);
    assert.equal(w.message, 'the certificate of admin ops (serial adm) expires in 12 days');
    assert.match(w.fix, /headroomctl pki renew, presenting this certificate .*headroomctl --pki-dir \/pki pki renew/);
  });
});

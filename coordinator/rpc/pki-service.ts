/**
 * PkiService: enrolment and the administration of the coordinator's certificates, over the Authority.
 * Who may call what is decided by the auth interceptor (Enroll is open, the rest needs the admin role).
 */
import type { sendUnaryData } from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import * as enums from '../../proto/enums';
import type * as v1 from '../../proto/generated/headroom/v1';
import { InvalidArgumentError } from '../domain/errors';
import type { Authority } from '../pki/authority';
import { PkiNotConfiguredError } from '../pki/errors';
import type { Identity } from '../pki/identity';
import type { CertificateRecord } from '../pki/pki-store';
import { toServiceError } from './status';
import * as validate from './validate';

const ROLES = { AGENT: 'agent', HOST: 'host', ADMIN: 'admin' } as const satisfies Record<(typeof enums.role.names)[number], Identity['role']>;

export function identityFromWire(field: string, id: v1.Identity__Output | null): Identity {
  if (!id) throw new InvalidArgumentError(field, 'missing');
  const role = ROLES[validate.enumName(`${field}.role`, enums.role, id.role)];
  if (role === 'admin') return { role, name: validate.name(`${field}.name`, id.name) };
  const host = validate.name(`${field}.host`, id.host);
  return role === 'host' ? { role, host } : { role, host, vm: validate.name(`${field}.vm`, id.vm) };
}

export function identityToWire(id: Identity): v1.Identity {
  return {
    role: enums.role.toWire(id.role.toUpperCase() as keyof typeof ROLES),
    host: id.role === 'admin' ? '' : id.host,
    vm: id.role === 'agent' ? id.vm : '',
    name: id.role === 'admin' ? id.name : '',
  };
}

function certificateToWire(c: CertificateRecord): v1.Certificate {
  return {
    serial: c.serial,
    identity: identityToWire(c.identity),
    notBeforeUnixMs: c.notBefore,
    notAfterUnixMs: c.notAfter,
    revokedUnixMs: c.revokedAt ?? 0,
    revokeReason: c.revokeReason ?? '',
  };
}

export function pkiService(authority: Authority | undefined, log: Logger): v1.PkiServiceHandlers {
  /** Runs a handler body against the authority and answers through the status table. */
  const run = <Res>(method: string, callback: sendUnaryData<Res>, body: (a: Authority) => Res | Promise<Res>) => {
    Promise.resolve()
      .then(() => {
        if (!authority) throw new PkiNotConfiguredError();
        return body(authority);
      })
      .then(
        (res) => callback(null, res),
        (e) => callback(toServiceError(e, log, method)),
      );
  };
  const token = (a: Authority, identity: Identity, ttlMs: number, rotates: boolean): v1.CreateEnrollmentTokenResponse => {
    const t = a.createToken(identity, ttlMs, rotates);
    return { token: t.text, expiresUnixMs: t.expiresAt, caFingerprintSha256: t.caFingerprint };
  };
  return {
    Enroll(call, callback) {
      run('Enroll', callback, async (a) => {
        const r = await a.enroll(validate.text('token', call.request.token, 256), validate.text('csr_pem', call.request.csrPem, 16_384));
        return { certificatePem: r.certificatePem, caCertificatePem: r.caCertificatePem, identity: identityToWire(r.identity), notAfterUnixMs: r.notAfter };
      });
    },
    CreateEnrollmentToken(call, callback) {
      run('CreateEnrollmentToken', callback, (a) => token(a, identityFromWire('identity', call.request.identity), call.request.ttlMs, false));
    },
    RotateCertificate(call, callback) {
      run('RotateCertificate', callback, (a) => token(a, identityFromWire('identity', call.request.identity), call.request.ttlMs, true));
    },
    ListCertificates(call, callback) {
      run('ListCertificates', callback, (a) => ({ certificates: a.list(call.request.includeRevoked).map(certificateToWire) }));
    },
    RevokeCertificates(call, callback) {
      run('RevokeCertificates', callback, (a) => {
        const { serial, identity, reason } = call.request;
        const why = validate.text('reason', reason, 256);
        if ((serial === '') === !identity) throw new InvalidArgumentError('serial', 'give a serial or an identity (one of them)');
        const revoked = serial !== '' ? a.revoke({ serial: validate.text('serial', serial, 64) }, why) : a.revoke({ identity: identityFromWire('identity', identity) }, why);
        return { revoked: revoked.map(certificateToWire) };
      });
    },
  };
}

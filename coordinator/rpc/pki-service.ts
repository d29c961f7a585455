/**
 * PkiService: enrolment and the administration of the coordinator's certificates, over the Authority.
 * Who may call what is decided by the auth interceptor (Enroll is open, RenewCertificate is for a
 * certificate's own identity, the rest needs the admin role).
 */
import type { Logger } from '../../common/util/log';
import type * as v1 from '../../proto/generated/headroom/v1';
import type { Authority } from '../pki/authority';
import { PkiNotConfiguredError } from '../pki/errors';
import type { Identity } from '../pki/identity';
import type { CertificateRecord } from '../pki/pki-store';
import { unary } from './handler';
import type { ServedCertificate } from './server-security';
import * as validate from './validate';

export function identityToWire(id: Identity): v1.Identity {
  return {
    role: validate.roleToWire(id.role),
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

function serverToWire(c: ServedCertificate): v1.ServerCertificate {
  return {
    serial: c.serial,
    dnsNames: c.dnsNames,
    ipAddresses: c.ipAddresses,
    notBeforeUnixMs: c.notBefore,
    notAfterUnixMs: c.notAfter,
    caNotAfterUnixMs: c.caNotAfter,
    file: c.file,
  };
}

export function pkiService(
  authority: Authority | undefined,
  log: Logger,
  serverCertificate?: () => ServedCertificate,
): v1.PkiServiceHandlers {
  const configured = (): Authority => {
    if (!authority) throw new PkiNotConfiguredError();
    return authority;
  };
  const token = async (
    a: Authority,
    identity: Identity,
    ttlMs: number,
    rotates: boolean,
  ): Promise<v1.CreateEnrollmentTokenResponse> => {
    const t = a.createToken(identity, ttlMs, rotates);
    await a.published();
    return { token: t.text, expiresUnixMs: t.expiresAt, caFingerprintSha256: t.caFingerprint };
  };
  return {
    Enroll: unary(log, async (req: v1.EnrollRequest__Output) => {
      const a = configured();
      const input = validate.enrollRequest(req);
      const r = await a.enroll(input.token, input.csrPem);
      return {
        certificatePem: r.certificatePem,
        caCertificatePem: r.caCertificatePem,
        identity: identityToWire(r.identity),
        notAfterUnixMs: r.notAfter,
      };
    }),
    CreateEnrollmentToken: unary(log, (req: v1.CreateEnrollmentTokenRequest__Output) =>
      token(configured(), validate.identity('identity', req.identity), req.ttlMs, false),
    ),
    RotateCertificate: unary(log, (req: v1.RotateCertificateRequest__Output) =>
      token(configured(), validate.identity('identity', req.identity), req.ttlMs, true),
    ),
    ListCertificates: unary(log, (req: v1.ListCertificatesRequest__Output) => ({
      certificates: configured().list(req.includeRevoked).map(certificateToWire),
      server: serverCertificate ? serverToWire(serverCertificate()) : undefined,
    })),
    // The auth interceptor let through only a caller renewing a certificate of its own identity.
    RenewCertificate: unary(log, async (req: v1.RenewCertificateRequest__Output) => {
      const a = configured();
      const input = validate.renewCertificateRequest(req);
      const r = await a.renew(input.serial, input.csrPem);
      return {
        certificatePem: r.certificatePem,
        caCertificatePem: r.caCertificatePem,
        serial: r.serial,
        notAfterUnixMs: r.notAfter,
      };
    }),
    RevokeCertificates: unary(log, async (req: v1.RevokeCertificatesRequest__Output) => {
      const a = configured();
      const { selector, reason } = validate.revokeCertificatesRequest(req);
      const revoked = a.revoke(selector, reason);
      await a.published();
      return { revoked: revoked.map(certificateToWire) };
    }),
  };
}

/**
 * The agent renews its own client certificate before it expires: once a fraction of its lifetime has
 * passed (agent.yaml tls.renewAtFraction, default 2/3), over its mutual TLS session with the coordinator
 * (PkiService.RenewCertificate), with a new key made here (common/pki/renewal.ts writes key and
 * certificate together). The connection reads the files at each new connection, so the new certificate is
 * presented from the next one; the old one stays valid until its own expiry. A failed renewal is a WARN
 * naming the file, the expiry and the fix, tried again every hour; past the expiry only a new enrolment helps.
 */
import * as grpc from '@grpc/grpc-js';
import { type PkiClient, unary } from '../common/client/connection';
import { DEFAULT_RENEW_AT_FRACTION, describeExpiry, renewalPoint } from '../common/pki/expiry';
import { type CertificateFiles, readCertificate, renewCertificateFiles } from '../common/pki/renewal';
import type { Logger } from '../common/util/log';

/** Timers are re-armed at least daily: setTimeout cannot wait the months until a renewal point. */
const MAX_WAIT_MS = 86_400_000;
/** After a failed renewal, before the next try. */
export const RENEWAL_RETRY_MS = 3_600_000;

export interface CertificateRenewerOptions {
  files: CertificateFiles;
  client: PkiClient;
  log: Logger;
  /** Of the certificate's lifetime; default DEFAULT_RENEW_AT_FRACTION. */
  fraction?: number;
  /** Wall clock, Unix ms: certificates' validity is wall-clock time. */
  now?: () => number;
}

/** How long to wait before renewing a certificate valid from `notBefore` to `notAfter`: 0 when due. */
export function renewalDelay(cert: { notBefore: number; notAfter: number }, fraction: number, now: number): number {
  return Math.max(0, renewalPoint(cert.notBefore, cert.notAfter, fraction) - now);
}

export class CertificateRenewer {
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly now: () => number;
  private readonly fraction: number;

  constructor(private readonly options: CertificateRenewerOptions) {
    this.now = options.now ?? Date.now;
    this.fraction = options.fraction ?? DEFAULT_RENEW_AT_FRACTION;
  }

  /** Checks now (renewing if due), then whenever the next renewal point comes. */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.check();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  private arm(ms: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), Math.min(ms, MAX_WAIT_MS));
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const { files, log, client } = this.options;
    let cert;
    try {
      cert = readCertificate(files.certFile);
    } catch (e) {
      log.warn('cannot read the agent certificate to renew it', { error: (e as Error).message });
      return this.arm(RENEWAL_RETRY_MS);
    }
    const wait = renewalDelay(cert, this.fraction, this.now());
    if (wait > 0) {
      log.debug('certificate renewal scheduled', {
        certFile: files.certFile,
        at: new Date(this.now() + wait).toISOString(),
      });
      return this.arm(wait);
    }
    try {
      const r = await renewCertificateFiles(files, (req) => unary(client.RenewCertificate.bind(client), req));
      if (!this.running) return;
      log.info('certificate renewed: the next connection presents it', {
        certFile: files.certFile,
        serial: r.serial,
        previous: r.previousSerial,
        notAfter: new Date(r.notAfter).toISOString(),
      });
      // Not at once: a certificate cut short by a CA near its own expiry would be due again at once.
      return this.arm(RENEWAL_RETRY_MS);
    } catch (e) {
      if (!this.running) return;
      const err = e as Partial<grpc.ServiceError>;
      const error = err.code !== undefined ? `${grpc.status[err.code]}: ${err.details}` : (e as Error).message;
      const expired = cert.notAfter <= this.now();
      log[expired ? 'error' : 'warn'](
        `certificate renewal failed; the certificate ${describeExpiry(cert.notAfter, this.now())}`,
        {
          certFile: files.certFile,
          notAfter: new Date(cert.notAfter).toISOString(),
          error,
          retryInMs: RENEWAL_RETRY_MS,
          fix: expired
            ? 'enrol again: headroomctl pki rotate --host H --vm V on the admin side, then headroom-agent enroll here'
            : 'it is tried again every hour; if it keeps failing before the expiry, enrol again (headroomctl pki rotate, headroom-agent enroll)',
        },
      );
      return this.arm(RENEWAL_RETRY_MS);
    }
  }
}

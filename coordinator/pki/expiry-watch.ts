/**
 * Warns ahead of the expiry of what the coordinator serves with (its server certificate and its CA) and of
 * the host and admin identities, which do not renew by themselves as agents do. A WARN line at start, after
 * each reload and once a day, for each that expires within EXPIRY_WARNING_MS, naming the certificate and
 * what fixes it. `expiryWarnings` decides (pure, given `now`); the watch only logs.
 */
import { EXPIRY_WARNING_MS, describeExpiry, expiresWithin } from '../../common/pki/expiry';
import type { Logger } from '../../common/util/log';
import { describeIdentity, identityUri } from './identity';
import type { CertificateRecord } from './pki-store';

export interface WatchedCertificate {
  what: 'server certificate' | 'CA certificate' | 'client certificate';
  /** The file, for the coordinator's own; the identity, for a client's. */
  file?: string;
  identity?: string;
  notAfter: number;
  /** The state directory, for the command that fixes it. */
  pkiDir: string;
}

export interface ExpiryWarning {
  message: string;
  file?: string;
  notAfter: string;
  fix: string;
}

const DAY_MS = 86_400_000;

function fixFor(c: WatchedCertificate): string {
  switch (c.what) {
    case 'server certificate':
      return `headroomctl pki reissue-server --dir ${c.pkiDir}, then kill -HUP the coordinator (docs/security.md, "Renewing certificates")`;
    case 'CA certificate':
      return 'make a new CA and enrol every client again before then (docs/security.md, "When the CA nears its expiry")';
    case 'client certificate':
      return `headroomctl pki renew, presenting this certificate (the admin of pki init: headroomctl --pki-dir ${c.pkiDir} pki renew)`;
  }
}

/**
 * The host and admin certificates to watch: the latest of each identity (an older one renewed since is
 * not a concern). Agents renew their own and say so when they cannot.
 */
export function clientCertificatesToWatch(active: readonly CertificateRecord[], pkiDir: string): WatchedCertificate[] {
  const latest = new Map<string, CertificateRecord>();
  for (const c of active) {
    if (c.identity.role === 'agent') continue;
    const key = identityUri(c.identity);
    if ((latest.get(key)?.notAfter ?? -Infinity) < c.notAfter) latest.set(key, c);
  }
  return [...latest.values()].map((c) => ({
    what: 'client certificate',
    identity: `${describeIdentity(c.identity)} (serial ${c.serial})`,
    notAfter: c.notAfter,
    pkiDir,
  }));
}

/** The warnings due at `now` for `certs`. */
export function expiryWarnings(
  certs: readonly WatchedCertificate[],
  now: number,
  withinMs = EXPIRY_WARNING_MS,
): ExpiryWarning[] {
  return certs
    .filter((c) => expiresWithin(c.notAfter, now, withinMs))
    .map((c) => ({
      message:
        c.what === 'client certificate'
          ? `the certificate of ${c.identity} ${describeExpiry(c.notAfter, now)}`
          : `the coordinator's ${c.what} ${describeExpiry(c.notAfter, now)}`,
      file: c.file,
      notAfter: new Date(c.notAfter).toISOString(),
      fix: fixFor(c),
    }));
}

export class ExpiryWatch {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly certs: () => readonly WatchedCertificate[],
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Checks now, then once a day. */
  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), DAY_MS);
    this.timer.unref();
  }

  check(): void {
    for (const w of expiryWarnings(this.certs(), this.now()))
      this.log.warn(w.message, { file: w.file, notAfter: w.notAfter, fix: w.fix });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

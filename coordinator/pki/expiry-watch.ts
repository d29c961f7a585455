/**
 * Warns ahead of the expiry of what the coordinator serves with: its server certificate and its CA. A
 * WARN line at start, after each reload and once a day, for each that expires within EXPIRY_WARNING_MS,
 * naming the file and what fixes it. `expiryWarnings` decides (pure, given `now`); the watch only logs.
 */
import { EXPIRY_WARNING_MS, describeExpiry, expiresWithin } from '../../common/pki/expiry';
import type { Logger } from '../../common/util/log';

export interface WatchedCertificate {
  what: 'server certificate' | 'CA certificate';
  file: string;
  notAfter: number;
  /** The state directory, for the command that fixes it. */
  pkiDir: string;
}

export interface ExpiryWarning {
  message: string;
  file: string;
  notAfter: string;
  fix: string;
}

const DAY_MS = 86_400_000;

function fixFor(c: WatchedCertificate): string {
  return c.what === 'server certificate'
    ? `headroomctl pki reissue-server --dir ${c.pkiDir}, then kill -HUP the coordinator (docs/security.md, "Renewing certificates")`
    : 'make a new CA and enrol every client again before then (docs/security.md, "When the CA nears its expiry")';
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
      message: `the coordinator's ${c.what} ${describeExpiry(c.notAfter, now)}`,
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

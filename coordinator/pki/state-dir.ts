/**
 * The PKI state directory (`headroomctl pki init --dir`, the coordinator's `pki.dir`): which file holds
 * what, and writing secrets safely. The directory is 0700 and every private key 0600, written to a
 * temporary name and renamed so that a crash never leaves half a key.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_PKI_DIR = '/var/lib/headroom/pki';

/** The files of one state directory. */
export function pkiFiles(dir: string) {
  const f = (name: string) => path.join(dir, name);
  return {
    dir,
    caCert: f('ca.pem'),
    caKey: f('ca.key'),
    /** The coordinator's certificate followed by the CA's, so that clients can see the CA they pin. */
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    /** headroomctl's admin identity on this machine. */
    adminCert: f('admin.pem'),
    adminKey: f('admin.key'),
    /** Hypervisor-level callers of this host (headroomctl host-backup, vzdump hooks). */
    hostCert: f('host.pem'),
    hostKey: f('host.key'),
    /** Enrolment tokens and issued certificates (SQLite). */
    database: f('pki.db'),
  };
}

export type PkiFiles = ReturnType<typeof pkiFiles>;

/** Creates `dir` (and parents) with mode 0700; tightens an existing one. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
}

/**
 * Writes `text` to `file` with `mode` (0600 for secrets), atomically: a temporary file created with that
 * mode from the start (never world-readable for an instant), fsynced, then renamed over the target.
 */
export function writeFileAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

export const SECRET_MODE = 0o600;
export const PUBLIC_MODE = 0o644;

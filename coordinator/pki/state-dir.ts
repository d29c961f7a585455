/**
 * The PKI state directory (`headroomctl pki init --dir`, the coordinator's `pki.dir`): which file holds
 * what. The directory is 0700 and every private key 0600 (common/pki/secret-files.ts writes them).
 */
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
    /** This machine's cluster member identity (headroom://member/<host>): how it forwards calls to the leader. */
    memberCert: f('member.pem'),
    memberKey: f('member.key'),
    /** Enrolment tokens and issued certificates (SQLite). */
    database: f('pki.db'),
  };
}

export type PkiFiles = ReturnType<typeof pkiFiles>;

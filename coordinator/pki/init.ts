/**
 * `headroomctl pki init`'s work: a new CA in a state directory, the coordinator's server certificate for
 * its names and addresses, and two client identities for this machine — admin (headroomctl) and host
 * (hypervisor-level callers such as host-backup and vzdump hooks) — all recorded in the PKI store so that
 * they can be listed and revoked like enrolled ones — and this host's cluster member identity (member.pem,
 * used only in cluster mode). Keys are written 0600 and never printed.
 */
import * as fs from 'node:fs';
import type { Logger } from '../../common/util/log';
import { Authority } from './authority';
import { CertificateAuthority } from './certificate-authority';
import { type Identity, checkIdentity } from './identity';
import { PkiStore } from './pki-store';
import { writeMemberCertificate, writeServerCertificate } from './server-certificate';
import { writeFileAtomic } from '../../common/util/atomic-file';
import { PUBLIC_MODE, SECRET_MODE } from '../../common/pki/secret-files';
import { pkiFiles } from './state-dir';

export interface InitOptions {
  dir: string;
  /** DNS names and IP addresses clients use to reach the coordinator (the server certificate's SAN). */
  serverNames: string[];
  /** The coordinator's host name (its --host): the host identity's. */
  host: string;
  /** Name of the admin identity. */
  admin: string;
  log: Logger;
}

export interface InitResult {
  files: ReturnType<typeof pkiFiles>;
  caFingerprint: string;
}

export class AlreadyInitialisedError extends Error {}

export async function initPki(options: InitOptions): Promise<InitResult> {
  const files = pkiFiles(options.dir);
  if (fs.existsSync(files.caKey))
    throw new AlreadyInitialisedError(`${files.caKey} exists: this directory already holds a CA`);
  const hostId = checkIdentity({ role: 'host', host: options.host });
  const adminId = checkIdentity({ role: 'admin', name: options.admin });
  const ca = await CertificateAuthority.create(options.dir, `Headroom CA (${options.host})`);
  const authority = new Authority(ca, new PkiStore(files.database), options.log);
  try {
    await writeServerCertificate(ca, options.dir, options.serverNames);

    const client = async (identity: Identity, certFile: string, keyFile: string) => {
      const issued = await ca.issueClientWithKey(identity);
      writeFileAtomic(keyFile, issued.keyPem, SECRET_MODE);
      writeFileAtomic(certFile, issued.pem, PUBLIC_MODE);
      authority.record({ serial: issued.serial, identity, notBefore: issued.notBefore, notAfter: issued.notAfter });
    };
    await client(adminId, files.adminCert, files.adminKey);
    await client(hostId, files.hostCert, files.hostKey);
    await writeMemberCertificate(ca, options.dir, options.host);
  } finally {
    authority.close();
  }
  return { files, caFingerprint: ca.fingerprint };
}

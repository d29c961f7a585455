/**
 * The coordinator's own TLS certificate in a PKI state directory: issuing it (pki init), reissuing it with
 * the same CA for new names or a new lifetime (pki reissue-server: nobody enrols again, since clients pin
 * the CA, not this certificate), and reading what it says (pki list, the expiry warnings); and the
 * cluster member certificate beside it.
 */
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { writeFileAtomic, writeFilesAtomic } from '../../common/util/atomic-file';
import { PUBLIC_MODE, SECRET_MODE } from '../../common/pki/secret-files';
import { generateKeyPair, privateKeyPem, x509 } from '../../common/pki/x509';
import { InvalidArgumentError } from '../domain/errors';
import { CertificateAuthority, SERVER_VALIDITY_MS } from './certificate-authority';
import { memberUri } from './identity';
import { pkiFiles } from './state-dir';

export interface ServerCertificateInfo {
  serial: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: number;
  notAfter: number;
  /** The file it was read from. */
  file: string;
}

/** What the first certificate of a PEM chain read from `file` says. @throws Error naming the file when it holds none. */
export function serverCertificateInfo(
  pem: string | Buffer,
  file: string,
): ServerCertificateInfo & { cert: x509.X509Certificate } {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(x509.PemConverter.decode(pem.toString())[0]);
  } catch (e) {
    throw new Error(`${file}: cannot read a certificate (${(e as Error).message})`);
  }
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  return {
    cert,
    serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    file,
  };
}

/**
 * Issues the server certificate for `names` and writes it (followed by the CA, so that an enrolling agent
 * finds the certificate its token pins) into the state directory. With `keepKey` the public key of the
 * current server.pem is certified again and only server.pem changes, in one rename: a coordinator that
 * reloads at any moment reads a key and certificate that match. Otherwise a new key is made and written
 * with it.
 */
export async function writeServerCertificate(
  ca: CertificateAuthority,
  dir: string,
  names: readonly string[],
  options: { validityMs?: number; keepKey?: boolean } = {},
): Promise<ServerCertificateInfo> {
  const files = pkiFiles(dir);
  checkServerNames(names);
  const keys = options.keepKey ? undefined : await generateKeyPair();
  const publicKey = keys?.publicKey ?? readServerCertificate(files.serverCert).cert.publicKey;
  const issued = await ca.issueServer(publicKey, names, options.validityMs ?? SERVER_VALIDITY_MS);
  const chain = { file: files.serverCert, text: issued.pem + '\n' + ca.certPem, mode: PUBLIC_MODE };
  if (keys) writeFilesAtomic([{ file: files.serverKey, text: await privateKeyPem(keys), mode: SECRET_MODE }, chain]);
  else writeFileAtomic(chain.file, chain.text, chain.mode);
  return readServerCertificate(files.serverCert);
}

/** serverCertificateInfo of a file. @throws Error naming the file when it cannot be read. */
export function readServerCertificate(file: string): ServerCertificateInfo & { cert: x509.X509Certificate } {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  return serverCertificateInfo(pem, file);
}

/**
 * The cluster member identity of `host` (headroom://member/<host>) in member.pem and member.key: what this
 * machine's coordinator presents when it forwards a call to the cluster's leader. Not recorded in the PKI
 * store (it is no caller of its own); replace it with `pki reissue-server --member HOST`.
 */
export async function writeMemberCertificate(ca: CertificateAuthority, dir: string, host: string): Promise<string> {
  const files = pkiFiles(dir);
  const issued = await ca.issueClientWithKey({ member: host });
  writeFilesAtomic([
    { file: files.memberKey, text: issued.keyPem, mode: SECRET_MODE },
    { file: files.memberCert, text: issued.pem, mode: PUBLIC_MODE },
  ]);
  return issued.serial;
}

export interface ReissueOptions {
  dir: string;
  /** Also write member.pem and member.key for this host's cluster member (cluster mode). */
  member?: string;
  /** DNS names and IP addresses; default: those of the current certificate. */
  names?: string[];
  validityMs?: number;
  /** Make a new key pair instead of certifying the current key again. */
  newKey?: boolean;
  now?: () => number;
}

/**
 * `pki reissue-server`: a new server certificate from the same CA (and member.pem, with `member`).
 * @throws InvalidArgumentError for bad names, IdentityError for a bad member host.
 */
export async function reissueServerCertificate(
  options: ReissueOptions,
): Promise<{ previous: ServerCertificateInfo; current: ServerCertificateInfo }> {
  const files = pkiFiles(options.dir);
  // A bad member name is refused before anything is written.
  if (options.member !== undefined) memberUri(options.member);
  const ca = await CertificateAuthority.load(options.dir, options.now);
  const { cert: _cert, ...previous } = readServerCertificate(files.serverCert);
  const names = options.names ?? [...previous.dnsNames, ...previous.ipAddresses];
  const current = await writeServerCertificate(ca, options.dir, names, {
    validityMs: options.validityMs,
    keepKey: !options.newKey,
  });
  if (options.member !== undefined) await writeMemberCertificate(ca, options.dir, options.member);
  return { previous, current };
}

/** A DNS name, a wildcard one, or a host name with underscores (not a hostname by RFC 952, but seen in the wild). */
const DNS_NAME = /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;

function checkServerNames(names: readonly string[]): void {
  if (names.length === 0) throw new InvalidArgumentError('names', 'give at least one DNS name or IP address');
  for (const n of names) {
    if (isIP(n) === 0 && !DNS_NAME.test(n))
      throw new InvalidArgumentError('names', `"${n}" is neither an IP address nor a DNS name`);
  }
}

/**
 * A client renewing its own certificate over its mutual TLS session (PkiService.RenewCertificate), for
 * the agent (automatically) and for headroomctl's admin and host identities (`pki renew`): a new key made
 * here, a request naming the certificate it replaces, checks that the answer is for that key, that
 * identity and from the CA we trust, then the key and certificate written together (the key 0600).
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import type * as v1 from '../../proto/generated/headroom/v1';
import { writeFilesAtomic } from '../util/atomic-file';
import { PUBLIC_MODE, SECRET_MODE } from './secret-files';

export interface CertificateFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The answer cannot be kept (another key, another identity, another CA), or a file cannot be read. */
export class RenewalError extends Error {}

/**
 * Why `certificatePem` is not a certificate for the key `spki` that `caPem` signed; undefined when it is.
 * Shared with enrolment, which checks its answer the same way.
 */
export function issuedForKeyProblem(certificatePem: string, caPem: string, spki: Buffer): string | undefined {
  const cert = new X509Certificate(certificatePem);
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'a certificate its CA did not sign';
  if (!cert.publicKey.export({ format: 'der', type: 'spki' }).equals(spki)) return 'a certificate for another key';
  return undefined;
}

/** The certificate in a PEM file: its serial (lower-case hex) and validity, for scheduling and messages. */
export function readCertificate(file: string): { serial: string; notBefore: number; notAfter: number; san: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(fs.readFileSync(file));
  } catch (e) {
    throw new RenewalError(`${file}: cannot read a certificate (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  return {
    serial: cert.serialNumber.toLowerCase(),
    notBefore: Date.parse(cert.validFrom),
    notAfter: Date.parse(cert.validTo),
    san: cert.subjectAltName ?? '',
  };
}

export interface Renewed {
  previousSerial: string;
  serial: string;
  notAfter: number;
}

/**
 * Renews the certificate in `files` through `call` (PkiService.RenewCertificate over a connection that
 * presents it). Rejects with what `call` rejects with (a gRPC error), or a RenewalError; the files are
 * left as they were unless the new pair is complete and checked.
 */
export async function renewCertificateFiles(
  files: CertificateFiles,
  call: (req: v1.RenewCertificateRequest) => Promise<v1.RenewCertificateResponse__Output>,
): Promise<Renewed> {
  const current = readCertificate(files.certFile);
  const caPem = fs.readFileSync(files.caFile, 'utf8');
  // Loaded here: the X.509 library would cost the agent daemon its start-up time for a yearly call.
  const { createCsrPem, generateKeyPair, privateKeyPem, publicKeySpki } = await import('./x509');
  const keys = await generateKeyPair();
  const res = await call({ serial: current.serial, csrPem: await createCsrPem(keys, 'headroom-renewal') });
  const problem = issuedForKeyProblem(res.certificatePem, caPem, await publicKeySpki(keys));
  if (problem) throw new RenewalError(`the coordinator answered the renewal with ${problem}`);
  const renewed = new X509Certificate(res.certificatePem);
  if ((renewed.subjectAltName ?? '') !== current.san)
    throw new RenewalError('the coordinator answered the renewal with a certificate for another identity');
  writeFilesAtomic([
    { file: files.keyFile, text: await privateKeyPem(keys), mode: SECRET_MODE },
    { file: files.certFile, text: res.certificatePem, mode: PUBLIC_MODE },
  ]);
  return { previousSerial: current.serial, serial: renewed.serialNumber.toLowerCase(), notAfter: res.notAfterUnixMs };
}

/**
 * X.509 through @peculiar/x509 on Node's WebCrypto: the one place that loads the library (it needs the
 * `reflect-metadata` polyfill and a crypto provider set before first use), plus what both sides of
 * enrolment need: an ECDSA P-256 key pair, its PEM form, and a certificate signing request.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/** ECDSA P-256 with SHA-256: small keys, fast to make on a guest, supported by every TLS stack we talk to. */
export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export type KeyPair = webcrypto.CryptoKeyPair;
export type CryptoKey = webcrypto.CryptoKey;

export async function generateKeyPair(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as KeyPair;
}

/** The private key as PKCS#8 PEM, what Node's TLS takes. */
export async function privateKeyPem(keys: KeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Reads a PKCS#8 PEM private key (ECDSA P-256) back for signing. */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
}

/** A PKCS#10 request signed with `keys`; the coordinator ignores its subject and takes only the public key. */
export async function createCsrPem(keys: KeyPair, commonName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }],
    keys,
    signingAlgorithm: KEY_ALGORITHM,
  });
  return csr.toString('pem');
}

/** The public key as DER SubjectPublicKeyInfo, to compare with a certificate's. */
export async function publicKeySpki(keys: KeyPair): Promise<Buffer> {
  return Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
}

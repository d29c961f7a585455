/**
 * `headroom-agent enroll`: joins this guest to a coordinator with a one-time token. Fetches the CA the
 * token pins (its SHA-256 fingerprint) from the coordinator's TLS handshake, makes a key pair here, sends
 * a certificate request to PkiService.Enroll over TLS verified against that CA, and writes the CA, the
 * certificate and the key (0600) for the agent's mutual TLS from then on. The key never leaves the guest.
 */
import * as path from 'node:path';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { connect, parseAddress, tlsCredentials, unary } from '../common/client/connection';
import type { Logger } from '../common/util/log';
import { normalizeFingerprint, parseEnrolmentToken } from '../common/pki/enrolment-token';
import { writeFileAtomic } from '../common/util/atomic-file';
import { PUBLIC_MODE, SECRET_MODE, ensurePrivateDir } from '../common/pki/secret-files';
import { issuedForKeyProblem } from '../common/pki/renewal';
import { createCsrPem, generateKeyPair, privateKeyPem, publicKeySpki } from '../common/pki/x509';
import type * as v1 from '../proto/generated/headroom/v1';
import { UsageError } from '../common/util/usage-error';
import { formatDuration } from '../common/util/duration';

export interface EnrollOptions {
  token: string;
  coordinator: string;
  /** Where to write ca.pem, agent.pem and agent-key.pem. */
  dir: string;
  log: Logger;
  /** How long to wait for the coordinator, ms. */
  timeoutMs?: number;
}

export interface EnrollResult {
  identity: v1.Identity__Output;
  files: { caFile: string; certFile: string; keyFile: string };
  notAfter: number;
}

/** Enrolment failed for a reason people can act on (wrong CA, refused token, unreachable coordinator). */
export class EnrollError extends Error {}

const PEM = (der: Buffer) =>
  `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;

/**
 * The certificate in the coordinator's TLS chain whose SHA-256 is `pin`, as PEM. This connection checks
 * nothing else: it only fetches the candidate CA, and the enrolment call that follows verifies the
 * coordinator against it.
 */
export function fetchPinnedCa(address: string, pin: string, timeoutMs: number): Promise<string> {
  const { host, port } = parseAddress(address);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    const timer = setTimeout(
      () => socket.destroy(new Error(`no TLS handshake within ${formatDuration(timeoutMs)}`)),
      timeoutMs,
    );
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(new EnrollError(`cannot reach the coordinator at ${address} over TLS: ${e.message}`));
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const seen: string[] = [];
      let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      while (cert?.raw && !seen.includes(cert.fingerprint256)) {
        seen.push(cert.fingerprint256);
        if (normalizeFingerprint(cert.fingerprint256) === pin) {
          socket.destroy();
          resolve(PEM(cert.raw));
          return;
        }
        cert = cert.issuerCertificate;
      }
      socket.destroy();
      reject(
        new EnrollError(
          `the coordinator at ${address} did not present the CA this token pins (sha256 ${pin}): not enrolling`,
        ),
      );
    });
  });
}

export async function enroll(options: EnrollOptions): Promise<EnrollResult> {
  const { log } = options;
  const timeoutMs = options.timeoutMs ?? 15_000;
  let token;
  try {
    token = parseEnrolmentToken(options.token);
  } catch (e) {
    throw new UsageError(`--token: ${(e as Error).message}`);
  }
  const caPem = await fetchPinnedCa(options.coordinator, token.caFingerprint, timeoutMs);
  log.info('coordinator CA matches the token', { coordinator: options.coordinator, caSha256: token.caFingerprint });

  const keys = await generateKeyPair();
  const csrPem = await createCsrPem(keys, 'headroom-agent');
  const clients = connect(options.coordinator, tlsCredentials(options.coordinator, { ca: Buffer.from(caPem) }));
  let res: v1.EnrollResponse__Output;
  try {
    res = await unary(clients.pki.Enroll.bind(clients.pki), { token: options.token.trim(), csrPem }, timeoutMs);
  } catch (e) {
    const err = e as grpc.ServiceError;
    throw new EnrollError(
      `the coordinator refused to enrol this agent: ${grpc.status[err.code] ?? err.code}: ${err.details}`,
    );
  } finally {
    clients.close();
  }
  // The certificate must be for our key and from the pinned CA: anything else is not ours to keep.
  const problem = issuedForKeyProblem(res.certificatePem, caPem, await publicKeySpki(keys));
  if (problem) throw new EnrollError(`the coordinator answered with ${problem}`);

  ensurePrivateDir(options.dir);
  const files = {
    caFile: path.join(options.dir, 'ca.pem'),
    certFile: path.join(options.dir, 'agent.pem'),
    keyFile: path.join(options.dir, 'agent-key.pem'),
  };
  writeFileAtomic(files.keyFile, await privateKeyPem(keys), SECRET_MODE);
  writeFileAtomic(files.certFile, res.certificatePem, PUBLIC_MODE);
  writeFileAtomic(files.caFile, caPem, PUBLIC_MODE);
  log.info('enrolled', {
    identity: res.identity,
    certFile: files.certFile,
    notAfter: new Date(res.notAfterUnixMs).toISOString(),
  });
  return { identity: res.identity!, files, notAfter: res.notAfterUnixMs };
}

/**
 * A coordinator process with its own CA for the security tests, and gRPC clients over loopback TLS with
 * real certificates: the admin and host identities `pki init` made, agents enrolled through the real
 * PkiService.Enroll, and an admin certificate from another CA.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../../common/client/connection';
import { createLogger } from '../../../common/util/log';
import { enroll } from '../../../agent/enroll';
import { initPki } from '../../../coordinator/pki/init';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';

export const silent = createLogger({ level: 'silent' });

export interface Pem {
  caFile: string;
  certFile?: string;
  keyFile?: string;
}

export interface PkiFixture {
  dir: string;
  pkiDir: string;
  coordinator: RunningCoordinator;
  /** localhost:PORT: the name the server certificate carries. */
  address: string;
  /** Clients presenting these files (none: TLS without a client certificate), closed by `close()`. */
  clients(pem: Pem): Clients;
  admin: Clients;
  /** Enrols the agent of `vm` on host-a with a fresh token; returns its files. */
  enrollAgent(vm: string): Promise<Pem & { serial: string }>;
  /** Restarts the coordinator process on the same database and CA (after a SIGKILL). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startPkiCoordinator(): Promise<PkiFixture> {
  const dir = tempDir('headroom-security-');
  const pkiDir = path.join(dir, 'pki');
  await initPki({ dir: pkiDir, host: 'host-a', serverNames: ['localhost', '127.0.0.1'], admin: 'admin', log: silent });
  const dbPath = path.join(dir, 'headroom.db');
  const start = () => startCoordinator({ dbPath, args: ['--pki-dir', pkiDir] });
  const opened: Clients[] = [];
  const fixture: PkiFixture = {
    dir,
    pkiDir,
    coordinator: await start(),
    get address() {
      return fixture.coordinator.address.replace('127.0.0.1', 'localhost');
    },
    clients(pem) {
      const read = (f?: string) => (f ? fs.readFileSync(f) : null);
      const c = connect(
        fixture.address,
        grpc.credentials.createSsl(read(pem.caFile), read(pem.keyFile), read(pem.certFile)),
      );
      opened.push(c);
      return c;
    },
    admin: undefined as unknown as Clients,
    async enrollAgent(vm) {
      const { token } = await unary(fixture.admin.pki.CreateEnrollmentToken.bind(fixture.admin.pki), {
        identity: { role: 'ROLE_AGENT', host: 'host-a', vm },
      });
      const r = await enroll({ token, coordinator: fixture.address, dir: path.join(dir, `agent-${vm}`), log: silent });
      const serial = new (await import('node:crypto')).X509Certificate(
        fs.readFileSync(r.files.certFile),
      ).serialNumber.toLowerCase();
      return { ...r.files, serial };
    },
    async restart() {
      await fixture.coordinator.kill();
      fixture.coordinator = await start();
    },
    async close() {
      for (const c of opened) c.close();
      await fixture.coordinator.kill();
    },
  };
  fixture.admin = fixture.clients(adminPem(pkiDir));
  return fixture;
}

export function adminPem(pkiDir: string): Pem {
  return {
    caFile: path.join(pkiDir, 'ca.pem'),
    certFile: path.join(pkiDir, 'admin.pem'),
    keyFile: path.join(pkiDir, 'admin.key'),
  };
}

export function hostPem(pkiDir: string): Pem {
  return {
    caFile: path.join(pkiDir, 'ca.pem'),
    certFile: path.join(pkiDir, 'host.pem'),
    keyFile: path.join(pkiDir, 'host.key'),
  };
}

/** headroomctl's global options to act as the host identity `pki init` made in `pkiDir`. */
export function hostFlags(pkiDir: string): string[] {
  const host = hostPem(pkiDir);
  return ['--tls-ca', host.caFile, '--tls-cert', host.certFile!, '--tls-key', host.keyFile!];
}

/** `headroomctl host-backup` of host-a's vm1 as the `vzdump` job, running `command`. */
export function hostBackupArgv(...command: string[]): string[] {
  return ['host-backup', '--host', 'host-a', '--vm', 'vm1', '--job', 'vzdump', '--', ...command];
}

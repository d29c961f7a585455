/**
 * A coordinator on the host with its own PKI and a libvirt guest whose agent is enrolled for the guest's
 * UUID and connected to it over mutual TLS (through guestfwd to loopback only): what the VM tests that
 * need the agent inside start from. The guest's agent.yaml names no `vm:`, so the agent is the VM by the
 * SMBIOS UUID libvirt set.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { enroll } from '../../../agent/enroll';
import { type Clients, connect, parseAddress, tlsCredentials, unary } from '../../../common/client/connection';
import { createLogger } from '../../../common/util/log';
import { initPki } from '../../../coordinator/pki/init';
import { type RunningCoordinator, startCoordinator, TEST_START_POLICY } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { type Guest, type GuestDisk, vmTempDir } from './guest';
import { GUEST_AGENT_CONFIG } from './guest-init';
import { bootLibvirtGuest } from './libvirt-guest';
import { reapAtExit } from '../../helpers/reaper';
import { HOST_IN_GUEST } from './user-network';

const silent = createLogger({ level: 'silent' });

export interface AgentGuestOptions {
  /** The coordinator's host name. */
  host: string;
  /** agent.yaml's lines after `coordinator:` and `tls:` (jobs, quiesce, ...). */
  agentConfig: string[];
  disks: GuestDisk[];
  /** The libvirt domain's name; default hr-test-<random> (guest.ts). */
  name?: string;
  /** Default 768. */
  memoryMiB?: number;
  /** coordinator.yaml policy lines added to the tests' (e.g. "  reportInterval: 1s"), read before any agent connects. */
  policyLines?: string[];
}

export interface AgentGuest {
  uuid: string;
  /** A vmTempDir() for the test's disks and backup targets. */
  dir: string;
  /** `pki init`'s directory: ca.pem, admin.pem/key, host.pem/key. */
  pkiDir: string;
  coordinator: RunningCoordinator;
  admin: Clients;
  /** The host role's identity, as host-backup uses it. */
  hostSide: Clients;
  /** Set once booted (undefined while booting, for attachConsolesOnFailure). */
  guest?: Guest;
  /** headroomctl's options for the coordinator as `who` (admin or host). */
  ctlArgs(who: 'admin' | 'host'): string[];
  close(): Promise<void>;
}

/**
 * Makes the coordinator, then `disks(dir)` (disks in the returned directory), boots the guest and waits
 * for its agent's session. Throws with the guest's console when the agent does not connect.
 */
export async function startAgentGuest(
  o: Omit<AgentGuestOptions, 'disks'> & { disks(dir: string): GuestDisk[] },
): Promise<AgentGuest> {
  const uuid = randomUUID();
  const dir = vmTempDir();
  const pkiDir = path.join(dir, 'pki');
  await initPki({ dir: pkiDir, host: o.host, serverNames: [HOST_IN_GUEST, '127.0.0.1'], admin: 'admin', log: silent });
  const config = path.join(dir, 'coordinator.yaml');
  fs.writeFileSync(config, `${TEST_START_POLICY}${(o.policyLines ?? []).map((l) => `${l}\n`).join('')}`);
  const coordinator = await startCoordinator({ host: o.host, args: ['--pki-dir', pkiDir, '--config', config] });
  // Interrupted, the process is gone before any close(): the coordinator must not outlive it either.
  const unreap = reapAtExit(() => coordinator.process.kill('SIGKILL'));
  const pem = (file: string) => path.join(pkiDir, file);
  const clientOf = (who: string) =>
    connect(
      coordinator.address,
      tlsCredentials(coordinator.address, {
        ca: fs.readFileSync(pem('ca.pem')),
        cert: fs.readFileSync(pem(`${who}.pem`)),
        key: fs.readFileSync(pem(`${who}.key`)),
      }),
    );
  const s: AgentGuest = {
    uuid,
    dir,
    pkiDir,
    coordinator,
    admin: clientOf('admin'),
    hostSide: clientOf('host'),
    ctlArgs: (who) => [
      '--coordinator',
      coordinator.address,
      '--tls-ca',
      pem('ca.pem'),
      '--tls-cert',
      pem(`${who}.pem`),
      '--tls-key',
      pem(`${who}.key`),
    ],
    async close() {
      // The coordinator stops even when the guest could not be destroyed (one already going).
      try {
        await s.guest?.destroy();
      } finally {
        s.admin.close();
        s.hostSide.close();
        await coordinator.stop();
        unreap();
      }
    },
  };
  try {
    const { token } = await unary(s.admin.pki.CreateEnrollmentToken.bind(s.admin.pki), {
      identity: { role: 'ROLE_AGENT', host: o.host, vm: uuid },
    });
    const { files } = await enroll({
      token,
      coordinator: coordinator.address,
      dir: path.join(dir, 'agent'),
      log: silent,
    });
    const port = parseAddress(coordinator.address).port;
    const agentYaml = [
      `coordinator: ${HOST_IN_GUEST}:${port}`,
      'tls: { caFile: /etc/headroom/ca.pem, certFile: /etc/headroom/agent.pem, keyFile: /etc/headroom/agent-key.pem }',
      ...o.agentConfig,
    ].join('\n');
    s.guest = await bootLibvirtGuest({
      uuid,
      name: o.name,
      memoryMiB: o.memoryMiB,
      disks: o.disks(dir),
      hostPorts: [port],
      files: {
        [GUEST_AGENT_CONFIG]: agentYaml,
        '/etc/headroom/ca.pem': fs.readFileSync(files.caFile),
        '/etc/headroom/agent.pem': fs.readFileSync(files.certFile),
        '/etc/headroom/agent-key.pem': fs.readFileSync(files.keyFile),
      },
    });
    const connected = async () =>
      (await unary(s.admin.admin.ListAgents.bind(s.admin.admin), { host: o.host })).agents.some(
        (a) => a.vm === uuid && a.connected,
      );
    await waitFor(connected, 180_000, `the guest's agent to connect as ${uuid}`).catch((err: Error) => {
      throw s.guest!.console.failure(err.message);
    });
  } catch (err) {
    await s.close();
    throw err;
  }
  return s;
}

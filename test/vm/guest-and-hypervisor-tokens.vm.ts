/**
 * The agent inside a real VM (a libvirt domain under TCG): with no `vm:` in its agent.yaml it is the
 * VM that libvirt's UUID names, and its guest backup and a hypervisor backup of the same VM never hold
 * tokens at the same time, whichever comes first. The guest reaches the coordinator only through
 * guestfwd to loopback, over mutual TLS with a certificate enrolled for that UUID.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Clients, connect, parseAddress, tlsCredentials, unary } from '../../common/client/connection';
import { createLogger } from '../../common/util/log';
import { enroll } from '../../agent/enroll';
import { initPki } from '../../coordinator/pki/init';
import { type RunningCoordinator, startCoordinator } from '../helpers/coordinator-process';
import { acquire, grant, release } from '../helpers/token-client';
import { waitFor } from '../helpers/wait';
import { makeExt4Disk } from './harness/disk';
import { attachConsolesOnFailure, type Guest, vmTempDir } from './harness/guest';
import { GUEST_AGENT_CONFIG } from './harness/guest-init';
import { bootLibvirtGuest } from './harness/libvirt-guest';
import { HOST_IN_GUEST } from './harness/user-network';

const HOST = 'host-vm';
const silent = createLogger({ level: 'silent' });

/** The guest job: waits for /tmp/job-go (the test's word), then tars the disk's src/ into backups/. */
const JOB_SCRIPT =
  'while [ ! -e /tmp/job-go ]; do sleep 0.1; done; mkdir -p /mnt/data/backups; ' +
  'tar -cf /mnt/data/backups/$(ls /mnt/data/backups | wc -l).tar -C /mnt/data src';

describe('VM: the agent in a libvirt guest against hypervisor tokens for the same VM', function () {
  const uuid = randomUUID();
  let coordinator: RunningCoordinator;
  let admin: Clients;
  let hostSide: Clients;
  let guest: Guest | undefined;
  let execs = 0;
  attachConsolesOnFailure(() => [guest]);

  before(async () => {
    const dir = vmTempDir();
    const pkiDir = path.join(dir, 'pki');
    await initPki({ dir: pkiDir, host: HOST, serverNames: [HOST_IN_GUEST, '127.0.0.1'], admin: 'admin', log: silent });
    coordinator = await startCoordinator({ host: HOST, args: ['--pki-dir', pkiDir] });
    const clientOf = (who: string) =>
      connect(
        coordinator.address,
        tlsCredentials(coordinator.address, {
          ca: fs.readFileSync(path.join(pkiDir, 'ca.pem')),
          cert: fs.readFileSync(path.join(pkiDir, `${who}.pem`)),
          key: fs.readFileSync(path.join(pkiDir, `${who}.key`)),
        }),
      );
    admin = clientOf('admin');
    hostSide = clientOf('host');
    const { token } = await unary(admin.pki.CreateEnrollmentToken.bind(admin.pki), {
      identity: { role: 'ROLE_AGENT', host: HOST, vm: uuid },
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
      'jobs:',
      '  - name: tar-data',
      "    schedule: '0 0 1 1 *'",
      '    window: 1h',
      '    expectedDuration: 1m',
      `    command: [sh, -c, ${JSON.stringify(JOB_SCRIPT)}]`,
    ].join('\n');
    const disk = makeExt4Disk(path.join(dir, 'data.qcow2'), {
      sizeMiB: 32,
      files: { 'src/a.txt': 'alpha\n', 'src/b.txt': 'beta\n' },
    });
    guest = await bootLibvirtGuest({
      uuid,
      disks: [{ path: disk, mountPoint: '/mnt/data' }],
      hostPorts: [port],
      files: {
        [GUEST_AGENT_CONFIG]: agentYaml,
        '/etc/headroom/ca.pem': fs.readFileSync(files.caFile),
        '/etc/headroom/agent.pem': fs.readFileSync(files.certFile),
        '/etc/headroom/agent-key.pem': fs.readFileSync(files.keyFile),
      },
    });
    await waitFor(
      async () => (await agents()).some((a) => a.vm === uuid && a.connected),
      180_000,
      `the guest's agent to connect as ${uuid}`,
    ).catch((err: Error) => {
      throw guest!.console.failure(err.message);
    });
  });

  after(async () => {
    await guest?.destroy();
    admin?.close();
    hostSide?.close();
    await coordinator?.stop();
  });

  const agents = async () => (await unary(admin.admin.ListAgents.bind(admin.admin), { host: HOST })).agents;
  const tokens = () => unary(admin.admin.ListTokens.bind(admin.admin), { host: HOST });

  /**
   * Starts `headroom-agent exec` of the configured job in the guest, in the background; resolves with a
   * function that awaits its exit code (and fails the test, with exec's output, on any but 0).
   */
  async function startGuestJob(): Promise<() => Promise<number>> {
    const n = ++execs;
    await guest!.sh(
      `(headroom-agent exec --config ${GUEST_AGENT_CONFIG} --job tar-data > /tmp/exec-${n}.log 2>&1; ` +
        `echo $? > /tmp/exec-${n}.rc) &`,
    );
    return async () => {
      let rc = '';
      await waitFor(
        async () => (rc = (await guest!.run(`cat /tmp/exec-${n}.rc 2>/dev/null`)).output.toString().trim()) !== '',
        120_000,
        `guest job ${n} to end`,
      );
      if (rc !== '0') assert.fail(`guest job ${n} exited ${rc}:\n${await guest!.sh(`cat /tmp/exec-${n}.log`)}`);
      return Number(rc);
    };
  }

  it('knows the agent by the SMBIOS UUID libvirt gave the domain', async () => {
    const [agent] = (await agents()).filter((a) => a.vm === uuid);
    assert.ok(agent, `no agent ${uuid} in ${JSON.stringify(await agents())}`);
    assert.deepEqual(
      agent.jobs.map((j) => j.name),
      ['tar-data'],
    );
  });

  it('holds a hypervisor token back while the guest backup runs, and the guest backup while one is held', async () => {
    const hypervisorRequest = { kind: 'TOKEN_KIND_HYPERVISOR' as const, host: HOST, vm: uuid, job: 'libvirt-backup' };
    const queuedKinds = async () => (await tokens()).queued.map((q) => `${q.request!.kind} ${q.request!.vm}`);

    // The guest first: its job holds a GUEST token until told to go on.
    await guest!.sh('rm -f /tmp/job-go');
    const firstJob = await startGuestJob();
    await waitFor(
      async () => (await tokens()).active.some((t) => t.kind === 'TOKEN_KIND_GUEST' && t.vm === uuid),
      60_000,
      'the guest job to hold a GUEST token',
    );
    const hypervisor = acquire(hostSide, hypervisorRequest);
    await waitFor(
      async () => (await queuedKinds()).includes(`TOKEN_KIND_HYPERVISOR ${uuid}`),
      30_000,
      'the hypervisor request to queue',
    );
    await guest!.sh('touch /tmp/job-go');
    assert.equal(await firstJob(), 0);
    const granted = (await hypervisor.done).granted!;
    await release(hostSide, granted);

    // The hypervisor first: the guest job queues until its token is released.
    const held = await grant(hostSide, hypervisorRequest);
    const secondJob = await startGuestJob();
    await waitFor(
      async () => (await queuedKinds()).includes(`TOKEN_KIND_GUEST ${uuid}`),
      60_000,
      'the guest job to queue',
    );
    await release(hostSide, held);
    assert.equal(await secondJob(), 0);

    assert.match(
      await guest!.sh('tar -tf /mnt/data/backups/0.tar; tar -tf /mnt/data/backups/1.tar'),
      /src\/b\.txt[\s\S]*src\/b\.txt/,
    );
    const history = await unary(admin.admin.ListHistory.bind(admin.admin), { host: HOST });
    assert.deepEqual(
      history.events
        .filter((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' || e.type === 'HISTORY_EVENT_TYPE_RELEASED')
        .map((e) => `${e.type.replace('HISTORY_EVENT_TYPE_', '')} ${e.kind.replace('TOKEN_KIND_', '')} ${e.vm}`),
      [
        `GRANTED GUEST ${uuid}`,
        `RELEASED GUEST ${uuid}`,
        `GRANTED HYPERVISOR ${uuid}`,
        `RELEASED HYPERVISOR ${uuid}`,
        `GRANTED HYPERVISOR ${uuid}`,
        `RELEASED HYPERVISOR ${uuid}`,
        `GRANTED GUEST ${uuid}`,
        `RELEASED GUEST ${uuid}`,
      ],
    );
  });
});

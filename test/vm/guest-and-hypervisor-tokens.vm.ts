/**
 * The agent inside a real VM (a libvirt domain under TCG): with no `vm:` in its agent.yaml it is the
 * VM that libvirt's UUID names, and its guest backup and a hypervisor backup of the same VM never hold
 * tokens at the same time, whichever comes first: a real `host-backup --driver libvirt` of the domain
 * waits for the guest's backup, and the guest's waits for a hypervisor token held. The guest reaches the coordinator only through
 * guestfwd to loopback, over mutual TLS with a certificate enrolled for that UUID.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { unary } from '../../common/client/connection';
import { grant, release } from '../helpers/token-client';
import { killAll, spawnCtl } from '../integration/ctl/ctl-process';
import { waitFor } from '../helpers/wait';
import { type AgentGuest, startAgentGuest } from './harness/agent-guest';
import { makeExt4Disk } from './harness/disk';
import { attachConsolesOnFailure } from './harness/guest';
import { GUEST_AGENT_CONFIG } from './harness/guest-init';

const HOST = 'host-vm';

/** The guest job: waits for /tmp/job-go (the test's word), then tars the disk's src/ into backups/. */
const JOB_SCRIPT =
  'while [ ! -e /tmp/job-go ]; do sleep 0.1; done; mkdir -p /mnt/data/backups; ' +
  'tar -cf /mnt/data/backups/$(ls /mnt/data/backups | wc -l).tar -C /mnt/data src';

describe('VM: the agent in a libvirt guest against hypervisor tokens for the same VM', function () {
  let s: AgentGuest;
  let execs = 0;
  attachConsolesOnFailure(() => [s?.guest]);

  before(async () => {
    s = await startAgentGuest({
      host: HOST,
      agentConfig: [
        'jobs:',
        '  - name: tar-data',
        "    schedule: '0 0 1 1 *'",
        '    window: 1h',
        '    expectedDuration: 1m',
        `    command: [sh, -c, ${JSON.stringify(JOB_SCRIPT)}]`,
      ],
      disks: (dir) => [
        {
          path: makeExt4Disk(path.join(dir, 'data.qcow2'), {
            sizeMiB: 32,
            files: { 'src/a.txt': 'alpha\n', 'src/b.txt': 'beta\n' },
          }),
          mountPoint: '/mnt/data',
        },
      ],
    });
  });

  after(async () => {
    await killAll();
    await s?.close();
  });

  const agents = async () => (await unary(s.admin.admin.ListAgents.bind(s.admin.admin), { host: HOST })).agents;
  const tokens = () => unary(s.admin.admin.ListTokens.bind(s.admin.admin), { host: HOST });

  /**
   * Starts `headroom-agent exec` of the configured job in the guest, in the background; resolves with a
   * function that awaits its exit code (and fails the test, with exec's output, on any but 0).
   */
  async function startGuestJob(): Promise<() => Promise<number>> {
    const n = ++execs;
    await s.guest!.sh(
      `(headroom-agent exec --config ${GUEST_AGENT_CONFIG} --job tar-data > /tmp/exec-${n}.log 2>&1; ` +
        `echo $? > /tmp/exec-${n}.rc) &`,
    );
    return async () => {
      let rc = '';
      await waitFor(
        async () => (rc = (await s.guest!.run(`cat /tmp/exec-${n}.rc 2>/dev/null`)).output.toString().trim()) !== '',
        120_000,
        `guest job ${n} to end`,
      );
      if (rc !== '0') assert.fail(`guest job ${n} exited ${rc}:\n${await s.guest!.sh(`cat /tmp/exec-${n}.log`)}`);
      return Number(rc);
    };
  }

  it('knows the agent by the SMBIOS UUID libvirt gave the domain', async () => {
    const [agent] = (await agents()).filter((a) => a.vm === s.uuid);
    assert.ok(agent, `no agent ${s.uuid} in ${JSON.stringify(await agents())}`);
    assert.deepEqual(
      agent.jobs.map((j) => j.name),
      ['tar-data'],
    );
  });

  it('holds a hypervisor token back while the guest backup runs, and the guest backup while one is held', async () => {
    const hypervisorRequest = { kind: 'TOKEN_KIND_HYPERVISOR' as const, host: HOST, vm: s.uuid, job: 'libvirt-backup' };
    const queuedKinds = async () => (await tokens()).queued.map((q) => `${q.request!.kind} ${q.request!.vm}`);

    // The guest first: its job holds a GUEST token until told to go on.
    await s.guest!.sh('rm -f /tmp/job-go');
    const firstJob = await startGuestJob();
    await waitFor(
      async () => (await tokens()).active.some((t) => t.kind === 'TOKEN_KIND_GUEST' && t.vm === s.uuid),
      60_000,
      'the guest job to hold a GUEST token',
    );
    // A libvirt backup of the same domain, as the host identity runs it.
    const libvirtBackup = spawnCtl([
      ...s.ctlArgs('host'),
      'host-backup',
      '--host',
      HOST,
      '--vm',
      s.uuid,
      '--job',
      'libvirt-backup',
      '--driver',
      'libvirt',
      '--target',
      path.join(s.dir, 'backups'),
    ]);
    await waitFor(
      async () => (await queuedKinds()).includes(`TOKEN_KIND_HYPERVISOR ${s.uuid}`),
      30_000,
      'the libvirt backup to queue',
    );
    await s.guest!.sh('touch /tmp/job-go');
    assert.equal(await firstJob(), 0);
    const backup = await libvirtBackup.done;
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, /^vda +full /m, 'the domain backed up, once the guest backup ended');

    // The hypervisor first: the guest job queues until its token is released.
    const held = await grant(s.hostSide, hypervisorRequest);
    const secondJob = await startGuestJob();
    await waitFor(
      async () => (await queuedKinds()).includes(`TOKEN_KIND_GUEST ${s.uuid}`),
      60_000,
      'the guest job to queue',
    );
    await release(s.hostSide, held);
    assert.equal(await secondJob(), 0);

    assert.match(
      await s.guest!.sh('tar -tf /mnt/data/backups/0.tar; tar -tf /mnt/data/backups/1.tar'),
      /src\/b\.txt[\s\S]*src\/b\.txt/,
    );
    const history = await unary(s.admin.admin.ListHistory.bind(s.admin.admin), { host: HOST });
    assert.deepEqual(
      history.events
        .filter((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' || e.type === 'HISTORY_EVENT_TYPE_RELEASED')
        .map((e) => `${e.type.replace('HISTORY_EVENT_TYPE_', '')} ${e.kind.replace('TOKEN_KIND_', '')} ${e.vm}`),
      [
        `GRANTED GUEST ${s.uuid}`,
        `RELEASED GUEST ${s.uuid}`,
        `GRANTED HYPERVISOR ${s.uuid}`,
        `RELEASED HYPERVISOR ${s.uuid}`,
        `GRANTED HYPERVISOR ${s.uuid}`,
        `RELEASED HYPERVISOR ${s.uuid}`,
        `GRANTED GUEST ${s.uuid}`,
        `RELEASED GUEST ${s.uuid}`,
      ],
    );
  });
});

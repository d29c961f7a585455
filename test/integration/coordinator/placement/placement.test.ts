/**
 * Placement through a real coordinator process over real gRPC, its libvirt source reading a stand-in virsh
 * (fake-virsh.ts): a VM named by its libvirt name and by the UUID its agent reports is one VM to every rule
 * and in the history; a HYPERVISOR token of a migrating VM waits, saying why; a VM that left has its waiting
 * requests here denied; a backup's token stays valid through a migration libvirt refused.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Clients, unary } from '../../../../common/client/connection';
import type { v1 } from '../../../../proto';
import { FakeAgent } from '../../../helpers/fake-agent';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../../helpers/coordinator-process';
import { acquire, connectPlain, grant, release, renew } from '../../../helpers/token-client';
import { waitFor } from '../../../helpers/wait';
import { runCtl } from '../../ctl/ctl-process';
import { FakeVirsh } from './fake-virsh';

const HOST = 'host-a';
const WEB1 = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
const DB1 = '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9';
const APP1 = '11111111-2222-4333-8444-555555555555';

async function history(clients: Clients, vm = ''): Promise<v1.HistoryEvent__Output[]> {
  return (await unary(clients.admin.ListHistory.bind(clients.admin), { host: HOST, vm, limit: 1000 })).events;
}

async function ownHost(clients: Clients): Promise<v1.HostInfo__Output> {
  const { hosts } = await unary(clients.admin.ListHosts.bind(clients.admin), {});
  return hosts.find((h) => h.host === HOST)!;
}

describe('placement with a real coordinator (libvirt source over a stand-in virsh)', function () {
  this.timeout(60_000);
  let virsh: FakeVirsh;
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const agents: FakeAgent[] = [];

  before(async () => {
    virsh = new FakeVirsh({ web1: WEB1, db1: DB1 });
    const config = path.join(tempDir(), 'coordinator.yaml');
    fs.writeFileSync(
      config,
      `${TEST_START_POLICY}  maxHypervisorTokens: 2\n` +
        // A VM's own thresholds, given by name (its agent reports no await: they change nothing here).
        `  vmPressure:\n    web1: { throttleAboveDiskAwait: 40ms, pauseAboveDiskAwait: 90ms, resumeBelowDiskAwait: 20ms }\n` +
        `placement:\n  libvirt:\n    uri: test:///fake\n` +
        // The job lists db1 by name; its command succeeds only when given that name.
        `hypervisorJobs:\n  - name: image\n    vms: [db1]\n    schedule: '0 3 1 1 *'\n    window: 1h\n` +
        `    expectedDuration: 1m\n    driver: command\n    command: [sh, -c, 'test "$0" = db1', '{vm}']\n`,
    );
    coordinator = await startCoordinator({ host: HOST, args: ['--config', config], env: virsh.env() });
    clients = connectPlain(coordinator.address);
  });

  after(async () => {
    for (const a of agents) a.close();
    clients?.close();
    await coordinator?.stop();
  });

  it('takes an agent reporting the UUID and a host-side request for the libvirt name as one VM: the second waits', async () => {
    const agent = new FakeAgent(clients, WEB1.toUpperCase(), HOST);
    agents.push(agent);
    await agent.connected();
    const guest = await grant(clients, { vm: WEB1.toUpperCase(), job: 'restic' });
    assert.equal(guest.vm, WEB1);
    // One token per VM: `web1` is the VM the agent's token is for; db1 is another VM and goes ahead.
    const byName = acquire(clients, { vm: 'web1', job: 'files' });
    await waitFor(() => byName.updates.some((u) => u.queued), 10_000, 'the request for web1 to queue');
    const db1 = await grant(clients, { vm: 'db1', job: 'files' });
    assert.equal(db1.vm, DB1);
    await release(clients, db1);
    await release(clients, guest);
    const granted = (await byName.done).granted!;
    assert.equal(granted.vm, WEB1);

    const { agents: listed } = await unary(clients.admin.ListAgents.bind(clients.admin), { host: HOST });
    assert.deepEqual(
      listed.map((a) => [a.vm, a.vmName]),
      [[WEB1, 'web1']],
    );
    const host = await ownHost(clients);
    assert.equal(host.placementSource, 'libvirt');
    assert.deepEqual(
      host.placement.map((v) => [v.name, v.uuid, v.state, v.agentConnected]),
      [
        ['db1', DB1, 'running', false],
        ['web1', WEB1, 'running', true],
      ],
    );
    // The history is keyed by the identity, shows the name, and answers a filter given by name.
    const web1 = await history(clients, 'web1');
    assert.ok(web1.length >= 3);
    assert.ok(web1.every((e) => e.vm === WEB1 && e.vmName === 'web1'));
    await release(clients, granted);
  });

  it('starts a backup of a VM given by UUID with the job that lists it by name, under a token keyed by the UUID', async () => {
    const admin = clients.admin;
    const started = await unary(admin.StartBackup.bind(admin), { vm: DB1.toUpperCase() });
    assert.equal(started.vm, DB1);
    assert.ok(started.argv.includes('db1'));
    await waitFor(
      async () =>
        (await unary(admin.ListBackupRuns.bind(admin), { vm: 'db1' })).runs.some(
          (r) => r.state !== 'BACKUP_RUN_STATE_RUNNING',
        ),
      30_000,
      'the backup run of db1 to end',
    );
    const [run] = (await unary(admin.ListBackupRuns.bind(admin), { vm: 'db1' })).runs;
    assert.equal(run.state, 'BACKUP_RUN_STATE_SUCCEEDED', run.outputTail);
    const released = (await history(clients, 'db1')).filter(
      (e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED' && e.kind === 'TOKEN_KIND_HYPERVISOR',
    );
    assert.deepEqual(
      released.map((e) => [e.vm, e.kind, e.job]),
      [[DB1, 'TOKEN_KIND_HYPERVISOR', 'image']],
    );
  });

  it('sets a per-VM policy given by name on the identity, and refuses a malformed VM naming the field', async () => {
    const policy = await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      vm: 'db1',
      startBelowCpuPercent: 90,
    });
    assert.deepEqual(Object.keys(policy.vmStartBelow), [DB1]);
    const pressure = await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      vm: 'db1',
      throttleAboveCpuPressurePercent: 0,
    });
    assert.deepEqual(Object.keys(pressure.vmPressure).sort(), [DB1, WEB1].sort(), "the file's web1, and db1");
    const bad = acquire(clients, { vm: 'web 1' });
    await assert.rejects(bad.done, (e: { code: number; details: string }) => e.code === 3 && /^vm: /.test(e.details));
  });

  it('holds a HYPERVISOR token of a VM migrating away, saying why, and denies it once the VM has left', async () => {
    virsh.event('web1', 'Suspended Migrated');
    await waitFor(
      async () => (await ownHost(clients)).placement.some((v) => v.migrating === 'out'),
      10_000,
      'web1 leaving',
    );
    const hv = acquire(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'web1', job: 'image' });
    await waitFor(
      () => hv.updates.some((u) => /web1 is migrating away from this host/.test(u.queued?.waitingFor ?? '')),
      10_000,
      'the waiter to hear that web1 is migrating',
    );
    // headroomctl shows it leaving, and the agent of web1 connected, by name.
    const status = await runCtl(['--coordinator', coordinator.address, 'status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^VMS ON host-a \(libvirt\)\s+UUID\s+VMID\s+STATE\s+AGENT\s+MIGRATING$/m);
    assert.match(
      status.stdout,
      /^web1\s+8c3f1a2b-\S+\s+-\s+paused\s+connected\s+leaving \(hypervisor backups wait\)$/m,
    );
    const agentsOut = await runCtl(['--coordinator', coordinator.address, 'agents']);
    assert.equal(agentsOut.code, 0, agentsOut.stderr);
    assert.match(agentsOut.stdout, /^web1 \(8c3f1a2b…\)\s+host-a\s/m);
    // Another VM's hypervisor backup goes ahead.
    const other = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'db1', job: 'image' });
    await release(clients, other);
    virsh.event('web1', 'Stopped Migrated');
    const denied = (await hv.done).denied!;
    assert.equal(denied.reason, 'DENY_REASON_VM_MIGRATED_AWAY');
    assert.match(denied.message, /web1 migrated away from host host-a/);
    const types = (await history(clients, WEB1)).map((e) => e.type);
    assert.ok(types.includes('HISTORY_EVENT_TYPE_VM_MIGRATING'));
    assert.ok(types.includes('HISTORY_EVENT_TYPE_VM_MIGRATED'));
    assert.equal(types[types.length - 1], 'HISTORY_EVENT_TYPE_DENIED');
    assert.ok(!(await ownHost(clients)).placement.some((v) => v.uuid === WEB1));
  });

  it('lets a HYPERVISOR token of an arriving VM wait until it has arrived', async () => {
    virsh.define({ db1: DB1, app1: APP1 });
    virsh.event('app1', 'Started Migrated');
    await waitFor(
      async () => (await ownHost(clients)).placement.some((v) => v.migrating === 'in'),
      10_000,
      'app1 arriving',
    );
    const hv = acquire(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'app1', job: 'image' });
    await waitFor(
      () => hv.updates.some((u) => /app1 is migrating to this host/.test(u.queued?.waitingFor ?? '')),
      10_000,
      'the waiter to hear that app1 is arriving',
    );
    virsh.event('app1', 'Resumed Migrated');
    const granted = (await hv.done).granted!;
    assert.equal(granted.vm, APP1);
    await release(clients, granted);
  });

  it('keeps a running backup’s token valid through a migration that libvirt refused, and records the attempt', async () => {
    const token = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'db1', job: 'image' });
    virsh.event('db1', 'Suspended Migrated');
    virsh.event('db1', 'Resumed Migrated');
    await waitFor(
      async () => (await history(clients, DB1)).some((e) => e.type === 'HISTORY_EVENT_TYPE_VM_MIGRATED'),
      10_000,
      'the failed migration of db1 in the history',
    );
    const migrating = (await history(clients, DB1)).find((e) => e.type === 'HISTORY_EVENT_TYPE_VM_MIGRATING')!;
    assert.match(migrating.detail, new RegExp(`HYPERVISOR token ${token.tokenId} active`));
    await renew(clients, token);
    await release(clients, token);
  });
});

describe('placement with a real coordinator (Proxmox config directory)', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;

  before(async () => {
    const pve = tempDir('hr-pve-');
    fs.mkdirSync(path.join(pve, 'qemu-server'));
    fs.writeFileSync(path.join(pve, 'qemu-server', '101.conf'), `name: web1\nsmbios1: uuid=${WEB1}\n`);
    const config = path.join(tempDir(), 'coordinator.yaml');
    fs.writeFileSync(config, `${TEST_START_POLICY}placement:\n  proxmox:\n    dir: ${pve}\n`);
    coordinator = await startCoordinator({ host: HOST, args: ['--config', config] });
    clients = connectPlain(coordinator.address);
  });

  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });

  it('takes a request for VMID 101 (a vzdump hook) and one for its UUID (its agent) as one VM', async () => {
    const byUuid = await grant(clients, { vm: WEB1, job: 'restic' });
    const byVmid = acquire(clients, { vm: '101', job: 'files' });
    await waitFor(() => byVmid.updates.some((u) => u.queued), 10_000, 'the request for 101 to queue');
    await release(clients, byUuid);
    const granted = (await byVmid.done).granted!;
    assert.equal(granted.vm, WEB1);
    await release(clients, granted);
    assert.deepEqual(
      (await ownHost(clients)).placement.map((v) => [v.name, v.vmid, v.state]),
      [['web1', '101', 'unknown']],
    );
  });
});

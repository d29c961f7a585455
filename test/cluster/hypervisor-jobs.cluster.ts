/**
 * Hypervisor jobs of every host run on that host (issue 17 point 5): a follower's `hypervisorJobs` entry
 * with a driver is planned by the leader, started by the follower's own process at its slot, takes its
 * HYPERVISOR token from the leader through the follower's front door, and shows in `headroomctl plan` and
 * `backup runs` asked at another member. When the leader is SIGKILLed mid-backup, the run keeps its token
 * (same id, same fencing number) and ends normally, and the job is not started again. `backup start` and
 * `backup cancel` asked at another member reach the follower's runner.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../common/client/connection';
import type { v1 } from '../../proto';
import { tempDir } from '../helpers/coordinator-process';
import { type ClusterMembers, type Member, startMembers } from '../helpers/cluster-members';
import { type EtcdCluster, startEtcdCluster } from '../helpers/etcd-cluster';
import { statusOf } from '../helpers/token-client';
import { waitFor } from '../helpers/wait';
import { type CtlResult, runCtl } from '../integration/ctl/ctl-process';

/** The follower's jobs: `nightly` due now (the minute just gone, daily), `yearly` never due during the test. */
function jobs(dir: string): string {
  const now = new Date(Date.now() - 60_000);
  // Each run notes its parent (host-backup) and waits for its `go` file, so the test decides when it ends.
  const command = `echo $PPID > ${dir}/parent-{vm}; while [ ! -e ${dir}/go-{vm} ]; do sleep 0.2; done; echo ran {vm} >> ${dir}/ran`;
  const job = (name: string, vm: string, schedule: string) =>
    `  - name: ${name}\n    vms: [${vm}]\n    schedule: "${schedule}"\n    window: 1h\n    expectedDuration: 20s\n` +
    `    driver: command\n    command: [sh, -c, "${command}"]\n`;
  return (
    'hypervisorJobs:\n' +
    job('nightly', 'vm-f', `${now.getMinutes()} ${now.getHours()} * * *`) +
    job('yearly', 'vm-g', '0 0 1 1 *')
  );
}

/** A process's parent, from the kernel's accounting. */
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('cluster: hypervisor jobs run on their own host', function () {
  this.timeout(5 * 60_000);
  let etcd: EtcdCluster | undefined;
  let members: ClusterMembers | undefined;
  /** The follower that runs the jobs, and another member to ask. */
  let follower: Member | undefined;
  let other: Member;
  let clients: Clients | undefined;
  const dir = tempDir('headroom-cluster-jobs-');

  before(async () => {
    etcd = await startEtcdCluster();
    members = await startMembers({
      endpoints: etcd.endpoints,
      electionTtl: '2s',
      args: ['--lease-ttl', '6s'],
      config: (m) => (m === follower ? jobs(dir) : ''),
    });
    // The jobs go to a follower: restarted with them once the leader is known.
    const leader = await members.waitLeader();
    follower = members.members.find((m) => m !== leader)!;
    other = members.members.find((m) => m !== leader && m !== follower)!;
    // Its runs wait for the test's go, not for a busy machine's load to drop: never paused.
    const policy = await runCtl([
      '--coordinator',
      other.address,
      'policy',
      'set',
      '--host',
      follower.host,
      '--max-pause',
      '0',
    ]);
    assert.equal(policy.code, 0, policy.stderr);
    await members.kill(follower);
    await members.restart(follower);
    // Every member: the calls below go on through whichever survives the leader kill.
    clients = connect(members.addressList, grpc.credentials.createInsecure());
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed' || !members) return;
    console.log(`      the members' logs are kept in ${members.keepLogs()}`);
  });

  after(async () => {
    clients?.close();
    for (const vm of ['vm-f', 'vm-g']) fs.writeFileSync(path.join(dir, `go-${vm}`), '');
    await members?.stopAll();
    await etcd?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const admin = () => clients!.admin;
  const runsOf = async (vm: string) => (await unary(admin().ListBackupRuns.bind(admin()), { vm })).runs;
  const tokenOf = async (vm: string) =>
    (await unary(admin().ListTokens.bind(admin()), { host: follower!.host })).active.find((t) => t.vm === vm);
  const grantsOf = async (vm: string) =>
    (await unary(admin().ListHistory.bind(admin()), { vm, limit: 1_000 })).events.filter(
      (e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' && e.kind === 'TOKEN_KIND_HYPERVISOR',
    );

  it("runs a follower's planned job on the follower, under a HYPERVISOR token that survives a leader kill", async () => {
    const host = follower!.host;
    // Planned by the leader once the follower published its jobs, shown by another member: tomorrow's run at
    // least (today's may be under way already), within the plan's 24 h.
    let plan: CtlResult | undefined;
    await waitFor(
      async () => {
        plan = await runCtl(['--coordinator', other.address, 'plan', '--host', host]);
        return plan.code === 0 && /vm-f/.test(plan.stdout) && /nightly/.test(plan.stdout);
      },
      60_000,
      "the follower's job in the plan",
    ).catch((e: Error) => assert.fail(`${e.message}; the last plan: ${plan?.stdout}${plan?.stderr}`));
    const parentFile = path.join(dir, 'parent-vm-f');
    let run: v1.BackupRun__Output | undefined;
    await waitFor(
      async () => {
        run = (await runsOf('vm-f'))[0];
        // Granted, and its driver's command started.
        return (run?.message.startsWith('backing up under token') ?? false) && fs.existsSync(parentFile);
      },
      120_000,
      "the follower's planned run to hold its token",
    );
    assert.equal(run!.job, 'nightly');
    // Through the follower's own front door, from the follower's own process.
    assert.deepEqual(run!.argv.slice(2, 4), ['--coordinator', follower!.address]);
    let hostBackup = 0;
    await waitFor(() => (hostBackup = Number(fs.readFileSync(parentFile, 'utf8'))) > 0, 10_000, 'its parent noted');
    assert.equal(parentOf(hostBackup), follower!.running!.process.pid);
    const listed = await runCtl(['--coordinator', other.address, 'backup', 'runs', '--vm', 'vm-f']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /vm-f.*nightly|nightly.*vm-f/);
    const token = await tokenOf('vm-f');
    assert.ok(token, 'the run holds a HYPERVISOR token at the leader');
    assert.equal(token.kind, 'TOKEN_KIND_HYPERVISOR');

    const leader = (await members!.leader())!;
    assert.notEqual(leader, follower);
    await members!.kill(leader);
    await members!.waitLeader(60_000, leader);
    const elected = Date.now();
    // The new leader restored it, and the run renews it there: its expiry moves past what a restore gives.
    await waitFor(
      async () => {
        const now = await tokenOf('vm-f').catch(() => undefined);
        assert.ok(now === undefined || now.tokenId === token.tokenId, 'no other token for the VM');
        return now !== undefined && now.expiresUnixMs > elected + now.ttlMs;
      },
      60_000,
      'the token renewed by its run through the new leader',
    );
    const kept = (await tokenOf('vm-f'))!;
    assert.deepEqual([kept.tokenId, kept.fencing], [token.tokenId, token.fencing]);
    await members!.restart(leader);

    fs.writeFileSync(path.join(dir, 'go-vm-f'), '');
    await waitFor(
      async () => (await runsOf('vm-f'))[0]?.state === 'BACKUP_RUN_STATE_SUCCEEDED',
      60_000,
      'the run to end normally',
    );
    assert.equal(fs.readFileSync(path.join(dir, 'ran'), 'utf8'), 'ran vm-f\n');
    // Started once: the new leader's plan does not hand the follower that occurrence again. Watched over a
    // few of the scheduler's looks (5 s) and plan reads, an absence has no event to wait on.
    await new Promise((r) => setTimeout(r, 15_000));
    assert.equal((await runsOf('vm-f')).length, 1);
    assert.equal((await grantsOf('vm-f')).length, 1);
    assert.equal((await tokenOf('vm-f')) === undefined, true, 'released');
  });

  it("starts and cancels a backup of the follower's VM asked at another member", async () => {
    const started = await runCtl(['--coordinator', other.address, 'backup', 'start', '--vm', 'vm-g']);
    assert.equal(started.code, 0, started.stderr);
    await waitFor(async () => (await runsOf('vm-g'))[0]?.state === 'BACKUP_RUN_STATE_RUNNING', 30_000, 'vm-g running');
    // A second start is refused by the follower's runner, as on a single host.
    const again = await statusOf(unary(admin().StartBackup.bind(admin()), { vm: 'vm-g', full: false }));
    assert.equal(again.code, grpc.status.ALREADY_EXISTS, again.details);
    const cancelled = await runCtl(['--coordinator', other.address, 'backup', 'cancel', '--vm', 'vm-g', '--wait']);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    await waitFor(
      async () => (await runsOf('vm-g'))[0]?.state === 'BACKUP_RUN_STATE_CANCELLED',
      30_000,
      'vm-g cancelled',
    );
    // A VM no member runs.
    const none = await statusOf(unary(admin().StartBackup.bind(admin()), { vm: 'vm-nowhere', full: false }));
    assert.equal(none.code, grpc.status.FAILED_PRECONDITION);
    assert.match(none.details, /no member of the cluster/);
  });
});

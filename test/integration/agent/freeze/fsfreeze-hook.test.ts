/**
 * The qemu-guest-agent integration, run as qemu-ga runs it: Debian's own /etc/qemu/fsfreeze-hook (package
 * qemu-guest-agent), copied unchanged next to a fsfreeze-hook.d into which `headroom-agent
 * install-fsfreeze-hook --dir` wrote our script, run with `env -i`, the argument freeze or thaw, and
 * stdin/stdout/stderr on /dev/null, against a real coordinator and a real agent daemon.
 *
 * Debian's script finds its hook directory next to itself (dirname "$0"), but writes its log to the fixed
 * /var/log/qga-fsfreeze-hook.log: the script is run unchanged, so the test needs that file writable (root,
 * as CI runs) and reads only what its own runs appended there (lines naming its own temporary directory).
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../../../common/client/connection';
import type { v1 } from '../../../../proto';
import { AGENT_MAIN, type RunningCoordinator, startCoordinator, tempDir } from '../../../helpers/coordinator-process';
import { type AcquireCall, acquire, release } from '../../../helpers/token-client';
import { type AgentProcess, EVERY_OTHER_SECOND, startAgent, waitFor, writeConfig } from '../processes';
import { requireTool } from '../../../helpers/require-tool';

const DEBIAN_HOOK = '/etc/qemu/fsfreeze-hook';
const QGA_LOG = '/var/log/qga-fsfreeze-hook.log';
const HOST = 'host-a';
const VM = 'web-1';

/** Debian's hook, copied unchanged into a fresh directory, with ours installed in its fsfreeze-hook.d. */
function installHooks(noticeArgs: string[]): { hook: string; dir: string } {
  requireTool(DEBIAN_HOOK, 'qemu-guest-agent');
  const dir = tempDir('headroom-qga-');
  const hook = path.join(dir, 'fsfreeze-hook');
  fs.copyFileSync(DEBIAN_HOOK, hook);
  fs.chmodSync(hook, 0o755);
  const installed = spawnSync([
    AGENT_MAIN,
    'install-fsfreeze-hook',
    '--dir',
    path.join(dir, 'fsfreeze-hook.d'),
    ...noticeArgs,
  ]);
  assert.equal(installed.status, 0, installed.output);
  const script = path.join(dir, 'fsfreeze-hook.d', 'headroom-agent');
  assert.equal(fs.statSync(script).mode & 0o777, 0o755);
  return { hook, dir };
}

function spawnSync(args: string[]): { status: number | null; output: string } {
  const r = require('node:child_process').spawnSync(process.execPath, args, { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Runs the hook as qemu-ga does; resolves with its exit code and what it appended to the hook log about `dir`. */
async function runAsQemuGa(
  hook: { hook: string; dir: string },
  phase: 'freeze' | 'thaw',
): Promise<{ code: number | null; log: string }> {
  const offset = fs.existsSync(QGA_LOG) ? fs.statSync(QGA_LOG).size : 0;
  const child = spawn('env', ['-i', hook.hook, phase], { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.ok(
    fs.existsSync(QGA_LOG),
    `the hook wrote no ${QGA_LOG} (the test needs it writable: run as root, as CI does)`,
  );
  const appended = fs.readFileSync(QGA_LOG, 'utf8').slice(offset);
  // The lines about our script, and its output between them (Debian's script sends it to the same log).
  const ours = appended
    .split(/(?=^.*: execute )/m)
    .filter((block) => block.includes(hook.dir))
    .join('');
  return { code, log: ours };
}

describe('qemu-guest-agent fsfreeze hook (run as qemu-ga runs it)', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let agent: AgentProcess | undefined;
  let socket: string;
  const calls: AcquireCall[] = [];

  const history = async () =>
    (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { host: HOST, limit: 1000 },
      )
    ).events;
  const freezeEvents = async () =>
    (await history()).filter(
      (e) => e.vm === VM && (e.type === 'HISTORY_EVENT_TYPE_VM_FROZEN' || e.type === 'HISTORY_EVENT_TYPE_VM_THAWED'),
    );
  const budgetOf = async (vm: string) => {
    const { agents } = await unary<v1.ListAgentsRequest, v1.ListAgentsResponse__Output>(
      clients.admin.ListAgents.bind(clients.admin),
      { host: HOST },
    );
    return agents.find((a) => a.vm === vm)?.budgets[0];
  };

  before(async () => {
    coordinator = await startCoordinator({ host: HOST });
    clients = connect(coordinator.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });
  afterEach(async function () {
    for (const c of calls.splice(0)) c.cancel();
    if (this.currentTest?.state === 'failed')
      console.error(`agent log:\n${agent?.stderr().split('\n').slice(-30).join('\n')}`);
    await agent?.stop();
    agent = undefined;
  });

  /** A daemon for VM web-1 with its control socket in a temporary directory, and `extra` YAML; resolves once its session is up. */
  async function startDaemon(extra: string[] = []): Promise<void> {
    socket = path.join(tempDir('headroom-sock-'), 'agent.sock');
    const config = writeConfig(
      [`coordinator: ${coordinator.address}`, `vm: ${VM}`, `host: ${HOST}`, `controlSocket: ${socket}`, ...extra].join(
        '\n',
      ),
    );
    agent = startAgent(['run', '--config', config]);
    await waitFor(
      'the agent session and its control socket',
      () => /session up/.test(agent!.stderr()) && /control socket listening/.test(agent!.stderr()),
      20_000,
    );
    assert.equal(fs.statSync(socket).mode & 0o777, 0o600, 'the control socket is for root only');
  }

  it("holds the frozen VM's guest backups with the reason, grants other VMs', and grants on the thaw", async () => {
    await startDaemon();
    const hook = installHooks(['--socket', socket]);

    const before = (await freezeEvents()).length;
    const frozen = await runAsQemuGa(hook, 'freeze');
    assert.equal(frozen.code, 0);
    assert.match(frozen.log, /execute \S+\/fsfreeze-hook\.d\/headroom-agent freeze/);
    assert.match(
      frozen.log,
      /freeze by qemu-guest-agent noted \(guest backups held for 10m at most\); coordinator told/,
    );
    assert.match(frozen.log, /headroom-agent finished with status=0/);
    const [frozenEvent] = await waitFor('the freeze in the history', async () => {
      const events = (await freezeEvents()).slice(before);
      return events.length > 0 ? events : undefined;
    });
    assert.equal(frozenEvent.type, 'HISTORY_EVENT_TYPE_VM_FROZEN');
    assert.match(
      frozenEvent.detail,
      /^VM web-1 frozen by qemu-guest-agent: its guest backups wait for the thaw, at most until /,
    );

    const held = acquire(clients, { host: HOST, vm: VM, job: 'restic' });
    const other = acquire(clients, { host: HOST, vm: 'db-1', job: 'dump' });
    calls.push(held, other);
    const granted = await other.done;
    assert.ok(granted.granted, 'another VM is not held');
    await waitFor('the held request to be queued', () => held.updates.find((u) => u.queued));
    const queued = held.updates.find((u) => u.queued)!.queued!;
    assert.match(queued.waitingFor, /^VM web-1 frozen by qemu-guest-agent since \d{4}-\d\d-\d\dT[\d:.]+Z/);
    assert.equal(
      held.updates.some((u) => u.granted),
      false,
    );
    await release(clients, granted.granted);

    const thawed = await runAsQemuGa(hook, 'thaw');
    assert.equal(thawed.code, 0);
    assert.match(thawed.log, /thaw by qemu-guest-agent noted; coordinator told/);
    const grant = await held.done;
    assert.ok(grant.granted, 'granted on the thaw');
    await release(clients, grant.granted);
    const events = (await freezeEvents()).slice(before);
    assert.deepEqual(
      events.map((e) => e.type),
      ['HISTORY_EVENT_TYPE_VM_FROZEN', 'HISTORY_EVENT_TYPE_VM_THAWED'],
    );
    assert.match(events[1].detail, /^VM web-1 thawed by qemu-guest-agent after [\d.hms]+$/);
    const grantEvent = (await history()).find(
      (e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' && e.tokenId === grant.granted!.tokenId,
    )!;
    assert.ok(grantEvent.seq > events[1].seq, 'granted after the thaw was recorded');
  });

  it('releases the hold when the bound passes without a thaw', async () => {
    await startDaemon();
    const hook = installHooks(['--socket', socket, '--hold', '2s']);
    const before = (await freezeEvents()).length;
    assert.equal((await runAsQemuGa(hook, 'freeze')).code, 0);
    const held = acquire(clients, { host: HOST, vm: VM, job: 'restic' });
    calls.push(held);
    await waitFor('the request to be held by the freeze', () =>
      held.updates.find((u) => /frozen by qemu-guest-agent/.test(u.queued?.waitingFor ?? '')),
    );
    const grant = await held.done;
    assert.ok(grant.granted);
    await release(clients, grant.granted);
    const lapsed = (await freezeEvents()).slice(before);
    assert.deepEqual(
      lapsed.map((e) => e.type),
      ['HISTORY_EVENT_TYPE_VM_FROZEN', 'HISTORY_EVENT_TYPE_VM_THAWED'],
    );
    assert.match(lapsed[1].detail, /^VM web-1: no thaw from qemu-guest-agent within the freeze's bound/);
  });

  it('does not fail the freeze when no agent listens, nor when the agent does not answer', async () => {
    const dir = tempDir('headroom-sock-');
    const absent = installHooks(['--socket', path.join(dir, 'absent.sock')]);
    const r1 = await runAsQemuGa(absent, 'freeze');
    assert.equal(r1.code, 0);
    assert.match(
      r1.log,
      /no agent is listening on \S+absent\.sock \(ENOENT\): the freeze is not reported: guest backups are not held off/,
    );
    assert.match(r1.log, /headroom-agent finished with status=0/);

    // A daemon that accepts and never answers: freeze-notice gives up within its bound and still exits 0.
    const mute = path.join(dir, 'mute.sock');
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => accepted.push(s)).listen(mute);
    await new Promise((r) => server.once('listening', r));
    try {
      const r2 = await runAsQemuGa(installHooks(['--socket', mute]), 'freeze');
      assert.equal(r2.code, 0);
      assert.match(r2.log, /no answer from the agent on \S+mute\.sock within 2s: the freeze is not reported/);
      assert.match(r2.log, /headroom-agent finished with status=0/);
      assert.equal(accepted.length, 1, 'it did connect');
    } finally {
      for (const s of accepted) s.destroy();
      server.close();
    }
  });

  it('pauses a guest backup running when the freeze comes, and resumes it on the thaw', async () => {
    // The load never throttles nor pauses anything here: a pause can only be the freeze's.
    await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: HOST,
      reportIntervalMs: 1_000,
      throttleAboveCpuPercent: 0,
      pauseAboveCpuPercent: 0,
      throttleAboveIoBytesPerSec: 0,
      pauseAboveIoBytesPerSec: 0,
    });
    const pidFile = path.join(tempDir(), 'backup.pid');
    await startDaemon([
      'jobs:',
      '  - name: backup',
      `    schedule: "${EVERY_OTHER_SECOND}"`,
      '    window: 1h',
      '    expectedDuration: 1m',
      `    command: [sh, -c, "echo $$ > ${pidFile}; while :; do sleep 0.2; done"]`,
    ]);
    await waitFor(
      'the backup to run, not paused',
      async () => {
        const b = await budgetOf(VM);
        return b && !b.paused ? b : undefined;
      },
      20_000,
    );
    const hook = installHooks(['--socket', socket]);
    assert.equal((await runAsQemuGa(hook, 'freeze')).code, 0);
    await waitFor('the backup to be paused', async () => ((await budgetOf(VM))?.paused ? true : undefined), 20_000);
    assert.match(agent!.stderr(), /VM frozen by qemu-guest-agent/);
    assert.equal((await runAsQemuGa(hook, 'thaw')).code, 0);
    await waitFor(
      'the backup to be resumed',
      async () => {
        const b = await budgetOf(VM);
        return b && !b.paused ? b : undefined;
      },
      20_000,
    );
  });

  it('says the freeze again after the coordinator restarts, so the hold survives it', async () => {
    await startDaemon();
    const hook = installHooks(['--socket', socket]);
    assert.equal((await runAsQemuGa(hook, 'freeze')).code, 0);
    await waitFor(
      'the freeze in the history',
      async () => (await freezeEvents()).at(-1)?.type === 'HISTORY_EVENT_TYPE_VM_FROZEN',
    );
    const before = (await freezeEvents()).length;

    // The hold is soft state: a restarted coordinator knows it only from the agent, which says it again.
    const { address, dbPath } = coordinator;
    clients.close();
    await coordinator.kill();
    coordinator = await startCoordinator({ host: HOST, dbPath, args: ['--listen', address] });
    clients = connect(coordinator.address, grpc.credentials.createInsecure());
    await waitFor('the freeze said again', async () => (await freezeEvents()).length > before, 20_000);
    const held = acquire(clients, { host: HOST, vm: VM, job: 'restic' });
    calls.push(held);
    await waitFor('the request to be held by the freeze', () =>
      held.updates.find((u) => /frozen by qemu-guest-agent/.test(u.queued?.waitingFor ?? '')),
    );

    assert.equal((await runAsQemuGa(hook, 'thaw')).code, 0);
    const grant = await held.done;
    assert.ok(grant.granted, 'granted on the thaw');
    await release(clients, grant.granted);
  });

  it('refuses a freeze notice with a bad source or an unbounded hold, naming the field', async () => {
    const answer = async (freezeNotice: v1.FreezeNotice) => {
      const call = clients.agent.Session();
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.on('error', () => {});
      call.on('data', () => {});
      call.write({ hello: { vm: 'vm-bad', host: HOST, agentVersion: 'test' } });
      call.write({ freezeNotice });
      return status;
    };
    const noSource = await answer({ frozen: true, source: '', holdMs: 0 });
    assert.equal(noSource.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(noSource.details, 'freeze_notice.source: is required');
    const tooLong = await answer({ frozen: true, source: 'qemu-guest-agent', holdMs: 3_600_001 });
    assert.equal(tooLong.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(tooLong.details, 'freeze_notice.hold_ms: must be an integer from 0 to 3600000, got 3600001');
    assert.deepEqual(
      (await history()).filter((e) => e.vm === 'vm-bad' && e.type === 'HISTORY_EVENT_TYPE_VM_FROZEN'),
      [],
      'nothing frozen',
    );
  });
});

/**
 * Shared targets against a real coordinator process (real gRPC, real SQLite) that knows three hosts: the
 * target's limits hold across them, a waiter says TARGET_FULL, the end of a token on one host grants a
 * waiter on another, headroomctl shows the target's use and its timeline across hosts, /metrics has a
 * gauge per target, and the target's tokens survive a restart.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { unary } from '../../../common/client/connection';
import type { Clients } from '../../../common/client/connection';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { FakeAgent } from '../../helpers/fake-agent';
import { acquire, connectPlain, grant, release, statusOf } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { runCtl } from '../ctl/ctl-process';
import { startAgent, waitFor as waitForValue, writeConfig } from '../agent/processes';

const MIB = 1024 * 1024;
const CONFIG = `${TEST_START_POLICY}  budgetIoBytesPerSec: ${40 * MIB}
http:
  listen: 127.0.0.1:0
targets:
  - name: pbs1
    maxConcurrent: 2
    ioBudget: 100MiB/s
hypervisorJobs:
  - name: image
    vms: [vm-h1]
    schedule: '0 12 * * *'
    window: 1h
    expectedDuration: 10m
    sharedTarget: pbs1
`;

describe('shared targets across hosts (real coordinator)', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const dir = tempDir();
  const config = path.join(dir, 'coordinator.yaml');
  const dbPath = path.join(dir, 'headroom.db');
  const start = async () => {
    coordinator = await startCoordinator({ host: 'host-a', dbPath, args: ['--config', config] });
    clients = connectPlain(coordinator.address);
  };
  before(async () => {
    fs.writeFileSync(config, CONFIG);
    await start();
  });
  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });
  const targets = () => unary(clients.admin.ListTargets.bind(clients.admin), {});
  const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args]);

  it('holds a target of two across three hosts, says TARGET_FULL, and grants the waiter of another host when one ends', async () => {
    const a = await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-a', vm: 'vm-a1', target: 'pbs1' });
    const b = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', host: 'host-b', vm: 'vm-b1', target: 'pbs1' });
    // The guest's own budget (40 MiB/s); the hypervisor kind has none here, so it gets the target's fair share.
    assert.deepEqual([a.target, a.budget!.ioBytesPerSec], ['pbs1', 40 * MIB]);
    assert.deepEqual([b.target, b.budget!.ioBytesPerSec], ['pbs1', 50 * MIB]);
    // Nothing holds host-c but the target: its request waits, saying for what.
    const c = acquire(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-c', vm: 'vm-c1', target: 'pbs1' });
    await waitFor(() => c.updates.length > 0);
    const queued = c.updates[0].queued!;
    assert.equal(queued.targetFull, 'pbs1');
    assert.equal(queued.waitingFor, 'target pbs1 full: 2/2 backups on it');
    assert.deepEqual(
      (await targets()).targets.map((t) => [t.name, t.active, t.maxConcurrent, t.ioBytesPerSec, t.queued]),
      [['pbs1', 2, 2, 90 * MIB, 1]],
    );

    const status = await ctl('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /\npbs1\s+2\/2\s+90\.0 MiB\/s\s+100 MiB\/s\s+1\n/);
    const metrics = await (await fetch(`${coordinator.httpUrl}/metrics`)).text();
    assert.match(metrics, /^headroom_target_active_tokens\{target="pbs1"\} 2$/m);
    assert.match(metrics, /^headroom_target_io_bytes_per_second\{target="pbs1"\} 94371840$/m);

    const history = await unary(clients.admin.ListHistory.bind(clients.admin), { vm: 'vm-a1' });
    assert.equal(history.events[0].detail, `fencing ${a.fencing}, ttl 30s, on target pbs1 (40.0 MiB/s of its I/O)`);
    await release(clients, a);
    const final = await c.done;
    assert.equal(final.granted?.host, 'host-c');
    assert.equal(final.granted?.target, 'pbs1');
    await release(clients, b);
    await release(clients, final.granted!);
    assert.deepEqual(
      (await targets()).targets.map((t) => [t.active, t.ioBytesPerSec, t.queued]),
      [[0, 0, 0]],
    );
  });

  it('refuses a request naming a target that is not configured, with INVALID_ARGUMENT naming the field', async () => {
    const s = await statusOf(acquire(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'vm-x', target: 'tape' }).done);
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(s.details, `target: no shared target "tape" (coordinator.yaml's targets: pbs1)`);
  });

  it("holds a request for a hypervisor job of coordinator.yaml to the job's target when it names none (a vzdump hook)", async () => {
    const token = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', host: 'host-a', vm: 'vm-h1', job: 'image' });
    assert.equal(token.target, 'pbs1');
    const other = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', host: 'host-b', vm: 'vm-h1', job: 'image' });
    // Another host's job of that name is not this coordinator's hypervisorJobs entry.
    assert.equal(other.target, '');
    await release(clients, token);
    await release(clients, other);
  });

  it('holds headroomctl host-backup --shared-target to the target', async () => {
    const run = await ctl('host-backup', '--host', 'host-b', '--vm', 'vm-hb', '--shared-target', 'pbs1', '--', 'true');
    assert.equal(run.code, 0, run.stderr);
    const history = await unary(clients.admin.ListHistory.bind(clients.admin), { vm: 'vm-hb' });
    const granted = history.events.find((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED');
    assert.match(granted?.detail ?? '', /, on target pbs1 \(50\.0 MiB\/s of its I\/O\)$/);
  });

  it("shows the target's timeline across hosts from the agents' declared jobs", async () => {
    const job = (name: string) => ({
      name,
      schedule: '0 1 * * *',
      windowMs: 4 * 3_600_000,
      expectedDurationMs: 3_600_000,
      declaredCost: null,
      priority: 0,
      target: 'pbs1',
    });
    const agents = [
      new FakeAgent(clients, 'vm-p1', 'host-a', [job('files')]),
      new FakeAgent(clients, 'vm-p2', 'host-a', [job('files')]),
      new FakeAgent(clients, 'vm-p3', 'host-b', [job('files')]),
    ];
    try {
      await Promise.all(agents.map((a) => a.connected()));
      // The agents' three runs, beside coordinator.yaml's image job (on pbs1 too, at noon).
      const planned = async () => {
        const plan = await unary(clients.admin.GetPlan.bind(clients.admin), { target: 'pbs1' });
        return plan.slots.filter((s) => s.job === 'files').length === 3 ? plan : undefined;
      };
      await waitFor(async () => (await planned()) !== undefined, 30_000, 'every host planned on pbs1');
      const plan = (await planned())!;
      assert.equal(plan.target?.name, 'pbs1');
      const files = plan.slots.filter((s) => s.job === 'files');
      assert.deepEqual(files.map((s) => s.host).sort(), ['host-a', 'host-a', 'host-b']);
      // Three runs of an hour each due at 01:00 on a target of two: never more than two at once.
      const at = (t: number) => plan.slots.filter((s) => s.startUnixMs <= t && t < s.endUnixMs).length;
      assert.ok(
        plan.slots.every((s) => at(s.startUnixMs) <= 2),
        JSON.stringify(plan.slots),
      );
      const shown = await ctl('plan', '--target', 'pbs1');
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /^target pbs1 \(at most 2 backups, I\/O 100 MiB\/s; now 0 backups/);
      assert.match(shown.stdout, /4 runs planned on 2 hosts; at most 2 at once/);
      assert.match(shown.stdout, /\nhost-a:vm-h1\/image /);
      assert.match(shown.stdout, /\nhost-b:vm-p3\/files /);
    } finally {
      for (const a of agents) a.close();
    }
  });

  it("a real agent's job naming the target waits for it, logs TARGET_FULL, and runs once another host's backup ends", async () => {
    const held = [
      // Held unrenewed for as long as the test takes.
      await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-b', vm: 'vm-b7', target: 'pbs1', ttlMs: 300_000 }),
      await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-b', vm: 'vm-b8', target: 'pbs1', ttlMs: 300_000 }),
    ];
    const config = writeConfig(
      [
        `coordinator: ${coordinator.address}`,
        'vm: vm-agent',
        'host: host-a',
        'jobs:',
        '  - name: to-pbs',
        '    schedule: "*/2 * * * * *"',
        '    window: 1m',
        '    expectedDuration: 1s',
        '    command: ["true"]',
        '    sharedTarget: pbs1',
      ].join('\n'),
    );
    const agent = startAgent(['run', '--config', config]);
    try {
      await waitForValue(
        'the agent to log that its job waits for pbs1',
        () => /waiting for a GUEST token .*target pbs1 full: 2\/2 backups on it.*targetFull=pbs1/.test(agent.stderr()),
        30_000,
      );
      await release(clients, held[0]);
      const released = await waitForValue(
        "the agent's run released",
        async () =>
          (await unary(clients.admin.ListHistory.bind(clients.admin), { vm: 'vm-agent', limit: 100 })).events.find(
            (e) => e.type === 'HISTORY_EVENT_TYPE_RELEASED',
          ),
        30_000,
      );
      assert.match(released.detail, /^success, exit 0/);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nthe agent's log:\n${agent.stderr()}`);
    } finally {
      await agent.stop();
      await release(clients, held[1]);
    }
  });

  it("keeps a target's tokens counted across a restart", async () => {
    const a = await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-a', vm: 'vm-r1', target: 'pbs1' });
    const b = await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-b', vm: 'vm-r2', target: 'pbs1' });
    clients.close();
    await coordinator.kill();
    await start();
    assert.deepEqual(
      (await targets()).targets.map((t) => [t.active, t.ioBytesPerSec]),
      [[2, 80 * MIB]],
    );
    const c = acquire(clients, { kind: 'TOKEN_KIND_GUEST', host: 'host-c', vm: 'vm-r3', target: 'pbs1' });
    await waitFor(() => c.updates.length > 0);
    assert.equal(c.updates[0].queued?.targetFull, 'pbs1');
    await release(clients, a);
    const final = await c.done;
    assert.equal(final.granted?.target, 'pbs1');
    await release(clients, b);
    await release(clients, final.granted!);
  });
});

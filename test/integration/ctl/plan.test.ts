/**
 * `headroomctl plan` against a real coordinator: a fake agent session declares guest jobs in its hello, the
 * coordinator's config a hypervisor job, and the plan shows them as Gantt rows (and as JSON), with the run
 * that cannot fit listed and why.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { type Clients, unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { connectPlain } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { killAll, runCtl } from './ctl-process';

const HOST = 'host-a';
const HOUR = 3_600_000;

/** Opens an agent session that says hello with `jobs`, as the agent daemon does. */
function hello(
  clients: Clients,
  vm: string,
  jobs: v1.JobDeclaration[],
): grpc.ClientDuplexStream<v1.AgentMessage, v1.CoordinatorMessage__Output> {
  const call = clients.agent.Session();
  call.on('error', () => {}); // cancelled in after()
  call.write({ hello: { vm, host: HOST, agentVersion: 'test', hostname: vm, jobs } });
  return call;
}

describe('headroomctl plan', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;
  const sessions: grpc.ClientDuplexStream<v1.AgentMessage, v1.CoordinatorMessage__Output>[] = [];

  before(async () => {
    const config = path.join(tempDir(), 'coordinator.yaml');
    fs.writeFileSync(
      config,
      "policy:\n  minStartGap: 1m\nhypervisorJobs:\n  - { name: image, vms: [vm-1], schedule: '30 23 * * *', window: 3h, expectedDuration: 40m }\n",
    );
    coordinator = await startCoordinator({ host: HOST, args: ['--config', config] });
    clients = connectPlain(coordinator.address);
    sessions.push(
      hello(clients, 'vm-1', [
        { name: 'nightly', schedule: '0 2 * * *', windowMs: 4 * HOUR, expectedDurationMs: HOUR, priority: 0 },
      ]),
      hello(clients, 'vm-2', [
        { name: 'dump', schedule: '0 * * * *', windowMs: HOUR, expectedDurationMs: 5 * 60_000, priority: 0 },
        // An hour's work in a ten-minute window: never placeable.
        { name: 'tooshort', schedule: '30 3 * * *', windowMs: 10 * 60_000, expectedDurationMs: HOUR, priority: 0 },
      ]),
    );
    await waitFor(
      async () => {
        const { agents } = await unary(clients.admin.ListAgents.bind(clients.admin), { host: HOST });
        return agents.filter((a) => a.connected).length === 2;
      },
      10_000,
      'both agents connected',
    );
  });

  afterEach(killAll);

  after(async () => {
    for (const s of sessions) s.cancel();
    clients?.close();
    await coordinator?.stop();
  });

  it('draws a row per VM and job, guest slots as =, hypervisor slots as #, and lists the run that cannot fit with its reason', async () => {
    const r = await runCtl(['--coordinator', coordinator.address, 'plan', '--host', HOST]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0], /^plan of host-a from \S+ to \S+ .*\(1d\): \d+ runs planned, [12] not placed$/);
    const row = (label: string) => lines.find((l) => l.startsWith(`${label} `));
    assert.match(row('vm-1/nightly') ?? '', /=/);
    assert.match(row('vm-1/image') ?? '', /#/, "the host's own hypervisor job");
    assert.doesNotMatch(row('vm-1/image') ?? '', /=/);
    assert.match(row('vm-2/dump') ?? '', /(=.*){20}/, 'an hourly job: a slot in most hours');
    assert.doesNotMatch(row('vm-2/tooshort') ?? '', /=/);
    assert.match(r.stdout, /^= guest backup {3}# hypervisor backup {3}\. its window {3}\| hour$/m);
    assert.match(r.stdout, /^vm-2\/tooshort +[\d: -]+ +10m +its window is shorter than its expected duration$/m);
    for (const l of lines) assert.ok(l.length <= 100, `wider than 100 columns: ${l}`);
  });

  it('answers --json with the slots, the unplaced runs and the phases', async () => {
    const r = await runCtl([
      '--coordinator',
      coordinator.address,
      '--json',
      'plan',
      '--host',
      HOST,
      '--horizon',
      '12h',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as v1.Plan__Output;
    assert.equal(plan.host, HOST);
    assert.equal(plan.horizonEndUnixMs - plan.generatedUnixMs, 12 * HOUR);
    const dumps = plan.slots.filter((s) => s.vm === 'vm-2' && s.job === 'dump');
    assert.ok(dumps.length >= 11, `${dumps.length} dump slots in 12 h`);
    // Whether the 23:30 image run falls inside these 12 h depends on the time of day the test runs at, so each
    // slot's kind is checked against its job rather than all of them against GUEST.
    for (const s of plan.slots) {
      assert.equal(s.kind, s.job === 'image' ? 'TOKEN_KIND_HYPERVISOR' : 'TOKEN_KIND_GUEST', JSON.stringify(s));
      assert.ok(s.startUnixMs >= s.earliestStartUnixMs && s.endUnixMs <= s.windowEndUnixMs, JSON.stringify(s));
    }
    const kinds = new Set(plan.slots.map((s) => s.kind));
    assert.ok(plan.phases.length >= 1 && plan.phases.every((p) => kinds.has(p.kind)), JSON.stringify(plan.phases));
  });

  it('refuses a horizon past a week, naming horizon_ms, and an unknown host', async () => {
    const tooFar = await runCtl(['--coordinator', coordinator.address, 'plan', '--horizon', '8d']);
    assert.equal(tooFar.code, 1);
    assert.match(tooFar.stderr, /^headroomctl: GetPlan: INVALID_ARGUMENT: .*horizon_ms/m);
    const unknown = await runCtl(['--coordinator', coordinator.address, 'plan', '--host', 'host-zz']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^headroomctl: GetPlan: NOT_FOUND: .*host-zz/m);
  });
});

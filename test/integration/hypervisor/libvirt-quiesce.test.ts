/**
 * `headroomctl host-backup --driver libvirt --quiesce` against real libvirt, a real coordinator and a real
 * agent (for the domain's name) with recording hooks: the guest is frozen right before `backup-begin` and
 * thawed right after, the backup recorded application-consistent; `require` without an agent starts no
 * libvirt job and leaves no checkpoint.
 */
import { strict as assert } from 'node:assert';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { virsh } from '../../helpers/libvirtd';
import type { AgentProcess } from '../agent/processes';
import { killAll, runCtl } from '../ctl/ctl-process';
import { hookSet, startQuiesceAgent } from '../quiesce/quiesce-fixture';
import { MiB, useLibvirtFixture } from './libvirt-fixture';

describe('host-backup --driver libvirt --quiesce', function () {
  this.timeout(90_000);
  const f = useLibvirtFixture({ diskSizes: [4 * MiB, 4 * MiB] });
  let coordinator: RunningCoordinator;
  let agent: AgentProcess | undefined;
  const hostBackup = (...extra: string[]) =>
    runCtl([
      '--coordinator',
      coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      f.domain.name,
      '--driver',
      'libvirt',
      '--target',
      f.store.dir,
      ...extra,
    ]);

  beforeEach(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
  });
  afterEach(async () => {
    await killAll();
    await agent?.stop();
    agent = undefined;
    await coordinator.kill();
  });

  it('freezes right before backup-begin, thaws right after, and records "application" in every manifest', async () => {
    const hooks = hookSet(['10-db', '20-fs']);
    agent = await startQuiesceAgent(coordinator.address, f.domain.name, hooks, 10_000);
    const run = await hostBackup('--quiesce', 'require');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(hooks.sequence(), ['10-db freeze', '20-fs freeze', '20-fs thaw', '10-db thaw']);
    const records = f.store.records(f.domain.uuid);
    assert.deepEqual(
      records.map((r) => r.consistency),
      ['application', 'application'],
    );
    // backup-begin (the snapshot point) lies between the last freeze hook and the first thaw hook.
    const calls = hooks.calls();
    const lastFreezeMs = Number(calls[1].atNs / 1_000_000n);
    const firstThawMs = Number(calls[2].atNs / 1_000_000n);
    for (const r of records) {
      assert.ok(
        r.takenAtMs >= lastFreezeMs - 1 && r.takenAtMs <= firstThawMs + 1,
        `snapshot at ${r.takenAtMs}, frozen ${lastFreezeMs}..${firstThawMs}`,
      );
    }
  });

  it('require without an agent: no libvirt job, no checkpoint, no backup, exit 1 with the reason', async () => {
    const run = await hostBackup('--quiesce', 'require');
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, new RegExp(`agent of VM ${f.domain.name} is not connected`));
    assert.deepEqual(f.store.records(f.domain.uuid), []);
    assert.equal((await virsh('checkpoint-list', f.domain.name, '--name')).trim(), '');
  });
});

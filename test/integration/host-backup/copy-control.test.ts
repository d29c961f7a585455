/**
 * The budget and the load controller's pauses reach QEMU's own copy (--driver qmp), everything real: a
 * qemu-storage-daemon whose disk holds data enough for a copy that takes a while, the real qmp-backup
 * process following host-backup's copy control channel, and what QEMU copies read from QEMU's own job
 * counters (query-block-jobs on a second QMP monitor), never from our processes.
 * The bound on a limited job is test/helpers/qemu-copy.ts's.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunningChild } from '../../../common/backup-run/child-process';
import type { QmpClient } from '../../../host-backup/hypervisor/qmp-client';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import {
  type DrivenBudget,
  type QemuJob,
  assertWithin,
  drivenBudget,
  pauseAndResume,
  sampleJob,
  samples,
} from '../../helpers/qemu-copy';
import { waitFor } from '../../helpers/wait';
import { killAll, runCtl, spawnCtl } from '../ctl/ctl-process';
import { MiB, qmpHostBackupArgs } from './fixture';
import { StorageDaemon, spawnQmpBackup } from './storage-daemon';

/** The backup's job, read on the observer monitor. */
const readJob = (observer: QmpClient) => () =>
  sampleJob(
    () => observer.execute<QemuJob[]>('query-block-jobs'),
    (j) => j.device.startsWith('headroom-backup-'),
  );

describe('the copy in QEMU held to the budget and paused (qmp driver)', function () {
  this.timeout(120_000);
  let dir: string;
  let daemon: StorageDaemon;
  let observer: QmpClient;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-copy-'));
    daemon = new StorageDaemon(dir, [{ name: 'disk0', size: 256 * MiB, filled: 128 * MiB }]);
    await daemon.start();
    observer = await daemon.observe();
  });

  afterEach(async () => {
    await killAll();
    observer.close();
    await daemon.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('headroomctl host-backup --driver qmp', () => {
    let coordinator: RunningCoordinator;
    beforeEach(async () => {
      coordinator = await startCoordinator({ host: 'host-a' });
    });
    afterEach(async () => {
      await coordinator.kill();
    });

    it("limits QEMU's job to the token's I/O budget and says so", async () => {
      const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args]);
      const speed = 16 * MiB;
      // No load thresholds: the other sessions on this machine must not pause the copy under test.
      const set = await ctl(
        'policy',
        'set',
        '--host',
        'host-a',
        '--throttle-above-cpu',
        '0',
        '--pause-above-cpu',
        '0',
        '--hypervisor-budget-io',
        '16M',
      );
      assert.equal(set.code, 0, set.stderr);
      const hb = spawnCtl(qmpHostBackupArgs(coordinator.address, daemon.qmpSocket, path.join(dir, 'backups')));
      await hb.waitFor('stderr', /copy limited to 16\.0 MiB\/s by QEMU's job speed \(the token's budget\)/);
      await waitFor(async () => (await readJob(observer)()) !== undefined, 30_000, 'the backup job');
      const limited = await samples(readJob(observer), 6, 500);
      assertWithin(limited, speed);
      const r = await hb.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^disk0 +full +256 MiB copied/m);
    });
  });

  describe("host-backup's load controller", () => {
    let child: RunningChild | undefined;
    let driven: DrivenBudget | undefined;
    afterEach(async () => {
      // A failed test's budget would keep reading the load, and mocha waiting, for ever.
      if (child) await driven?.stop(child);
      driven?.close();
    });

    it("pauses QEMU's job when the host is busy and resumes it when it is calm again", async () => {
      const speed = 8 * MiB;
      driven = drivenBudget('vm1', speed);
      child = spawnQmpBackup(daemon, 'vm1', path.join(dir, 'backups'), driven.channel);
      await driven.start(child);
      assertWithin(await samples(readJob(observer), 3, 500), speed);
      await pauseAndResume(driven, readJob(observer), speed);
      await driven.stop(child);
      child = undefined;
      assert.deepEqual(await observer.execute('query-block-jobs'), [], 'stopping qmp-backup cancelled its job');
    });
  });
});

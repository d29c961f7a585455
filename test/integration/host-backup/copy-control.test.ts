/**
 * The budget and the load controller's pauses reach QEMU's own copy (--driver qmp), everything real: a
 * qemu-storage-daemon whose disk holds data enough for a copy that takes a while, the real qmp-backup
 * process following host-backup's copy control channel, and what QEMU copies read from QEMU's own job
 * counters (query-block-jobs on a second QMP monitor), never from our processes.
 *
 * The bound on a limited job, between two reads of its offset: speed × the time between asking for the
 * first and receiving the second, plus one chunk (block-copy issues requests of up to 1 MiB without copy
 * offloading) and one slice of QEMU's rate limiter (it lets a 100 ms slice's worth go at once).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectEnforcement } from '../../../common/backup-run/budget/detect';
import type { RunningChild } from '../../../common/backup-run/child-process';
import type { LoadCollector } from '../../../common/backup-run/load-collector';
import { systemClock } from '../../../common/util/clock';
import { createLogger } from '../../../common/util/log';
import { DEFAULT_POLICY } from '../../../coordinator/domain/policy';
import { CopyControlChannel } from '../../../host-backup/copy-control-channel';
import { HostBudget } from '../../../host-backup/host-budget';
import type { QmpClient } from '../../../host-backup/hypervisor/qmp-client';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { killAll, runCtl, spawnCtl } from '../ctl/ctl-process';
import { MiB, qmpHostBackupArgs } from './fixture';
import { StorageDaemon, spawnQmpBackup } from './storage-daemon';

const CHUNK = 1 * MiB;

/** One read of the backup's jobs on the observer monitor. */
interface JobSample {
  offset: number;
  len: number;
  paused: boolean;
  /** When the query was sent and when its answer came (ms): QEMU read its counters in between. */
  sentAt: number;
  receivedAt: number;
}

async function sampleJob(observer: QmpClient): Promise<JobSample | undefined> {
  const sentAt = Date.now();
  const jobs =
    await observer.execute<Array<{ device: string; offset: number; len: number; paused: boolean }>>('query-block-jobs');
  const job = jobs.find((j) => j.device.startsWith('headroom-backup-'));
  return job && { offset: job.offset, len: job.len, paused: job.paused, sentAt, receivedAt: Date.now() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads the job `n` times `everyMs` apart (it must run throughout). */
async function samples(observer: QmpClient, n: number, everyMs: number): Promise<JobSample[]> {
  const out: JobSample[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(everyMs);
    const s = await sampleJob(observer);
    assert.ok(s, 'the backup job ran throughout');
    out.push(s);
  }
  return out;
}

/** Fails when the job copied more between two reads than `speed` allows (the module header's bound). */
function assertWithin(list: JobSample[], speed: number): void {
  for (let i = 1; i < list.length; i++) {
    const [a, b] = [list[i - 1], list[i]];
    const copied = b.offset - a.offset;
    const allowed = (speed * (b.receivedAt - a.sentAt)) / 1000 + CHUNK + speed / 10;
    assert.ok(copied <= allowed, `copied ${copied} bytes in ${b.receivedAt - a.sentAt} ms at ${speed} B/s`);
  }
  assert.ok(list[list.length - 1].offset > list[0].offset, 'the job copied while limited');
}

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
      await waitFor(async () => (await sampleJob(observer)) !== undefined, 30_000, 'the backup job');
      const limited = await samples(observer, 6, 500);
      assertWithin(limited, speed);
      const r = await hb.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^disk0 +full +256 MiB copied/m);
    });
  });

  describe("host-backup's load controller", () => {
    let child: RunningChild | undefined;
    let channel: CopyControlChannel | undefined;
    afterEach(async () => {
      await child?.stop(5_000);
      channel?.close();
    });

    it("pauses QEMU's job when the host is busy and resumes it when it is calm again", async () => {
      const speed = 8 * MiB;
      let busy = false;
      // The host's load as the controller reads it: the disk busy or idle, as the test says.
      const collector: LoadCollector = {
        sample: async () => ({
          cpuPercent: 0,
          diskReadBytesPerSec: 0,
          diskWriteBytesPerSec: busy ? 200 * MiB : 0,
          backupCpuPercent: 0,
          backupIoBytesPerSec: 0,
        }),
      };
      const policy = {
        ...DEFAULT_POLICY,
        reportIntervalMs: 200,
        budgetDwellMs: 0,
        throttleAboveCpuPercent: 0,
        pauseAboveCpuPercent: 0,
        throttleAboveIoBytesPerSec: 0,
        pauseAboveIoBytesPerSec: 100 * MiB,
        resumeBelowIoBytesPerSec: 10 * MiB,
      } as unknown as v1.Policy__Output;
      const events: Array<{ event: string; text: string }> = [];
      const log = createLogger({ level: 'silent' });
      channel = CopyControlChannel.create();
      const budget = new HostBudget({
        host: 'host-a',
        mechanism: detectEnforcement({ mode: 'auto', log }),
        limits: { cpuPercent: 0, ioBytesPerSec: 0 },
        fetchPolicy: async () => policy,
        clock: systemClock,
        now: Date.now,
        formatTime: () => 'now',
        log,
        emit: (event, _data, text) => events.push({ event, text }),
        copy: { control: channel, speedBy: "QEMU's job speed", pauseBy: "QEMU's block-job-pause" },
        collector: () => collector,
      });
      child = spawnQmpBackup(daemon, 'vm1', path.join(dir, 'backups'), channel);
      const token = {
        tokenId: 'token-1',
        fencing: 1,
        kind: 'TOKEN_KIND_HYPERVISOR',
        host: 'host-a',
        vm: 'vm1',
        budget: { cpuPercent: 0, ioBytesPerSec: speed },
        slot: { startUnixMs: Date.now(), expectedEndUnixMs: Date.now() + 3_600_000, windowEndUnixMs: 0 },
      } as unknown as v1.Token__Output;
      budget.started(child, token);
      const said = (pattern: RegExp) => events.some((e) => pattern.test(e.text));
      await waitFor(() => said(/copy limited to 8\.0 MiB\/s by QEMU's job speed/), 30_000, 'the budget applied');
      assertWithin(await samples(observer, 3, 500), speed);

      busy = true;
      await waitFor(() => said(/copy paused by the load controller: .*\(QEMU's block-job-pause\)/), 30_000, 'pause');
      // block-job-pause returns at once; the job pauses once its requests in flight are done.
      await waitFor(async () => (await sampleJob(observer))?.paused === true, 30_000, 'the job paused');
      const paused = await samples(observer, 4, 500);
      assert.ok(
        paused.every((s) => s.paused && s.offset === paused[0].offset),
        'nothing copied while paused',
      );

      busy = false;
      await waitFor(() => said(/copy limited to 8\.0 MiB\/s by QEMU's job speed \(the load controller: /), 30_000);
      const resumed = await samples(observer, 3, 500);
      assert.ok(resumed.every((s) => !s.paused));
      assertWithin(resumed, speed);
      budget.stopping();
      await child.stop(10_000);
      await budget.ended();
      child = undefined;
      assert.deepEqual(await observer.execute('query-block-jobs'), [], 'stopping qmp-backup cancelled its job');
    });
  });
});

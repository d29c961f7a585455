/**
 * `host-backup --driver libvirt` of a real guest (a libvirt domain under TCG) with the agent inside:
 * - `--quiesce require` freezes the ext4 filesystem on the guest's virtio disk through the agent's
 *   fsfreeze hook: a writer in the guest is held for the freeze and goes on after it, in the guest's own
 *   clock, and the backup, restored with qemu-img alone, is a clean filesystem holding exactly the lines
 *   written before the freeze;
 * - the copy in QEMU is held to the HYPERVISOR token's I/O budget, and paused and resumed by host-backup's
 *   load controller through `headroomctl libvirt-backup` following host-backup's copy control channel,
 *   as QEMU's own job counters (query-block-jobs through libvirt) show.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { unary } from '../../common/client/connection';
import { type RunningChild, spawnChild } from '../../common/backup-run/child-process';
import { ManifestStore } from '../../host-backup/catalog/manifest-store';
import { CTL_MAIN } from '../helpers/coordinator-process';
import { virsh } from '../helpers/libvirtd';
import {
  type DrivenBudget,
  type QemuJob,
  assertWithin,
  drivenBudget,
  pauseAndResume,
  rateOf,
  sampleJob,
  samples,
} from '../helpers/qemu-copy';
import { requireTool } from '../helpers/require-tool';
import { waitFor } from '../helpers/wait';
import { killAll, runCtl, spawnCtl } from '../integration/ctl/ctl-process';
import { MiB } from '../integration/hypervisor/libvirt-fixture';
import { type AgentGuest, startAgentGuest } from './harness/agent-guest';
import { makeBlockDisk, makeExt4Disk } from './harness/disk';
import { attachConsolesOnFailure } from './harness/guest';

const run = promisify(execFile);
const HOST = 'host-vm';
const mib = (bytes: number) => (bytes / MiB).toFixed(1);

/**
 * In place of busybox's fsfreeze, which the agent's fsfreeze hook runs from PATH: busybox's, noting the
 * guest's monotonic clock (/proc/uptime) right after the filesystem froze and right before it thaws.
 */
const FSFREEZE_PROBE = `#!/bin/sh
[ "$1" = --unfreeze ] && echo "thaw $(cut -d' ' -f1 /proc/uptime)" >> /tmp/fsfreeze.log
busybox fsfreeze "$@" || exit
[ "$1" = --freeze ] && echo "frozen $(cut -d' ' -f1 /proc/uptime)" >> /tmp/fsfreeze.log
exit 0
`;

/** Appends "COUNTER UPTIME" to the ext4 disk every ~50 ms, the time read right before each write. */
const WRITER =
  ': > /mnt/data/writer.log; (i=0; while :; do i=$((i+1)); t=$(cut -d" " -f1 /proc/uptime); echo "$i $t" >> /mnt/data/writer.log; ' +
  'sleep 0.05; done) </dev/null >/dev/null 2>&1 & echo $! > /tmp/writer.pid';

interface Line {
  n: number;
  t: number;
}

/** The writer's lines; fails on a torn or out-of-sequence one. */
function parseLines(text: string): Line[] {
  assert.ok(text.endsWith('\n'), `the log ends with a whole line: ${JSON.stringify(text.slice(-40))}`);
  return text
    .trimEnd()
    .split('\n')
    .map((l, i) => {
      const [n, t] = l.split(' ').map(Number);
      assert.equal(n, i + 1, `line ${i + 1} is ${JSON.stringify(l)}`);
      return { n, t };
    });
}

describe('VM: host-backup --driver libvirt of a guest with its agent inside', function () {
  let s: AgentGuest;
  attachConsolesOnFailure(() => [s?.guest]);

  before(async () => {
    requireTool('debugfs', 'e2fsprogs');
    s = await startAgentGuest({
      host: HOST,
      agentConfig: ['quiesce: { fsfreeze: [/mnt/data] }'],
      disks: (dir) => [
        { path: makeExt4Disk(path.join(dir, 'data.qcow2'), { sizeMiB: 32 }), mountPoint: '/mnt/data' },
        // Data in every block: a full backup copies all of it, long enough to watch.
        { path: makeBlockDisk(path.join(dir, 'big.qcow2'), 256, 0x5a) },
      ],
    });
  });

  after(async () => {
    await killAll();
    await s?.close();
  });

  const guest = () => s.guest!;
  const hostBackupArgs = (target: string, ...extra: string[]) => [
    ...s.ctlArgs('host'),
    'host-backup',
    '--host',
    HOST,
    '--vm',
    s.uuid,
    '--driver',
    'libvirt',
    '--target',
    path.join(s.dir, target),
    ...extra,
  ];

  it('--quiesce require holds the guest’s writes for the freeze, and the restored backup ends before it', async () => {
    await guest().sh(`rm /bin/fsfreeze; cat > /bin/fsfreeze <<'EOF'\n${FSFREEZE_PROBE}EOF\nchmod 755 /bin/fsfreeze`);
    await guest().sh(WRITER);
    const lineCount = async () => Number((await guest().sh('wc -l < /mnt/data/writer.log')).trim());
    await waitFor(async () => (await lineCount()) >= 5, 60_000, 'the writer writing');

    const r = await runCtl(hostBackupArgs('quiesced', '--disk', 'vda', '--quiesce', 'require'));
    assert.equal(r.code, 0, r.stderr);
    const afterBackup = await lineCount();
    await waitFor(async () => (await lineCount()) >= afterBackup + 3, 60_000, 'the writer going on after the thaw');
    await guest().sh('kill $(cat /tmp/writer.pid); sync');

    const [record] = ManifestStore.open(path.join(s.dir, 'quiesced')).records(s.uuid, 'vda');
    assert.equal(record.consistency, 'application');
    const history = await unary(s.admin.admin.ListHistory.bind(s.admin.admin), { host: HOST });
    assert.deepEqual(
      history.events
        .filter((e) => e.vm === s.uuid && /_(QUIESCED|THAWED)$/.test(e.type))
        .map((e) => e.type.replace('HISTORY_EVENT_TYPE_', '')),
      ['QUIESCED', 'THAWED'],
    );

    // The freeze in the guest's clock: [frozen, thaw] lies within the time the filesystem was frozen.
    const probe = (await guest().readFile('/tmp/fsfreeze.log')).toString().trim().split('\n');
    assert.equal(probe.length, 2, probe.join('\n'));
    const [frozen, thaw] = probe.map((l, i) => {
      const [what, t] = l.split(' ');
      assert.equal(what, ['frozen', 'thaw'][i]);
      return Number(t);
    });
    assert.ok(frozen <= thaw);

    // Restored with qemu-img alone: a clean filesystem (the freeze flushed it) holding the writer's lines.
    const raw = path.join(s.dir, 'quiesced.raw');
    await run('qemu-img', [
      'convert',
      '-O',
      'raw',
      ManifestStore.open(path.join(s.dir, 'quiesced')).pathOf(record),
      raw,
    ]);
    await run('e2fsck', ['-f', '-n', raw]);
    const backedUp = parseLines((await run('debugfs', ['-R', 'cat /writer.log', raw])).stdout);
    const live = parseLines((await guest().readFile('/mnt/data/writer.log')).toString());
    const n = backedUp.length;
    assert.deepEqual(backedUp, live.slice(0, n), 'the backup holds the first lines the guest wrote');
    // Every line in the backup was written before the filesystem froze; the next one was held (or started
    // while frozen) and the one after it started only after the thaw: the writes stopped for the freeze.
    assert.ok(backedUp[n - 1].t <= frozen, `last line backed up at ${backedUp[n - 1].t} s, frozen at ${frozen} s`);
    assert.ok(live.length >= n + 3, 'the writer went on after the thaw');
    assert.ok(live[n + 1].t >= thaw, `line ${n + 2} at ${live[n + 1].t} s, thawed at ${thaw} s`);
    console.log(
      `      guest clock: line ${n} at ${backedUp[n - 1].t} s (last backed up), frozen ${frozen}..${thaw} s, ` +
        `line ${n + 1} at ${live[n].t} s, line ${n + 2} at ${live[n + 1].t} s`,
    );
  });

  /** The backup job of the 256 MiB disk, read through libvirt from QEMU's monitor. */
  const readJob = () =>
    sampleJob(
      async () =>
        (
          JSON.parse(await virsh('qemu-monitor-command', guest().name, '{"execute":"query-block-jobs"}')) as {
            return: QemuJob[];
          }
        ).return,
      (j) => j.type === 'backup' && j.device.startsWith('backup-vdb-'),
    );

  it("holds QEMU's copy to the HYPERVISOR token's I/O budget", async () => {
    const speed = 16 * MiB;
    // No load thresholds: the other work on this machine must not pause the copy under test.
    const set = await runCtl([
      ...s.ctlArgs('admin'),
      'policy',
      'set',
      '--host',
      HOST,
      '--throttle-above-cpu',
      '0',
      '--pause-above-cpu',
      '0',
      '--hypervisor-budget-io',
      '16M',
    ]);
    assert.equal(set.code, 0, set.stderr);
    const hb = spawnCtl(hostBackupArgs('budgeted', '--disk', 'vdb'));
    await hb.waitFor('stderr', /copy limited to 16\.0 MiB\/s by QEMU's job speed \(the token's budget\)/, 60_000);
    await waitFor(async () => (await readJob()) !== undefined, 30_000, 'the backup job');
    const limited = await samples(readJob, 6, 500);
    assertWithin(limited, speed);
    console.log(`      QEMU's copy under a 16 MiB/s budget: ${mib(rateOf(limited))} MiB/s (query-block-jobs)`);
    const r = await hb.done;
    assert.equal(r.code, 0, r.stderr);
    const [record] = ManifestStore.open(path.join(s.dir, 'budgeted')).records(s.uuid, 'vdb');
    assert.deepEqual([record.kind, record.bytes], ['full', 256 * MiB]);
  });

  describe("host-backup's load controller, through headroomctl libvirt-backup's copy control channel", () => {
    let child: RunningChild | undefined;
    let driven: DrivenBudget | undefined;
    after(async () => {
      // A failed test's budget would keep reading the load, and mocha waiting, for ever.
      if (child) await driven?.stop(child);
      driven?.close();
    });

    it("pauses QEMU's copy when the host is busy and resumes it when it is calm again", async () => {
      const speed = 8 * MiB;
      driven = drivenBudget(s.uuid, speed);
      // As host-backup runs it: its own process group, following the channel host-backup's budget writes.
      const target = path.join(s.dir, 'paused');
      const checkpoints = () => virsh('checkpoint-list', guest().name, '--name');
      const checkpointsBefore = await checkpoints();
      child = spawnChild(
        [process.execPath, CTL_MAIN, 'libvirt-backup', '--vm', guest().name, '--target', target, '--disk', 'vdb'],
        { stdio: 'inherit', env: { ...process.env, HEADROOM_LOG: 'warn', ...driven.channel.env() } },
      );
      await driven.start(child);
      await waitFor(async () => (await readJob()) !== undefined, 60_000, 'the backup job');
      const limited = await samples(readJob, 3, 500);
      assertWithin(limited, speed);

      const { paused, resumed } = await pauseAndResume(driven, readJob, speed);
      console.log(
        `      QEMU's copy at 8 MiB/s: ${mib(rateOf(limited))} MiB/s; paused: ${mib(rateOf(paused))} MiB/s; ` +
          `resumed: ${mib(rateOf(resumed))} MiB/s (query-block-jobs)`,
      );

      await driven.stop(child);
      child = undefined;
      // Stopping libvirt-backup's process group, as host-backup does, aborted libvirt's job and deleted its
      // checkpoint (a job left to finish would have kept it): nothing left copying, no backup recorded.
      await waitFor(async () => (await readJob()) === undefined, 30_000, 'the job gone');
      assert.equal(await checkpoints(), checkpointsBefore);
      assert.deepEqual(ManifestStore.open(target).records(s.uuid), []);
    });
  });
});

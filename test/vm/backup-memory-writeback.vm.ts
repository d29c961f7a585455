/**
 * What cgroup v2 holds of a backup inside a real guest (the Debian cloud kernel under TCG, with the cpu,
 * io and memory controllers): the agent in a libvirt guest runs a job under its token's budget, and the
 * job's own cgroup shows that memory.high holds its page cache (reading a file twice its size leaves the
 * group's peak under the file's size) and that its buffered writes are charged to it at writeback (its
 * io.stat counts them), so io.max holds them too. This machine's host runs cgroup v1, where neither holds:
 * only a guest's own kernel can show it.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { unary } from '../../common/client/connection';
import { waitFor } from '../helpers/wait';
import { type AgentGuest, startAgentGuest } from './harness/agent-guest';
import { makeExt4Disk } from './harness/disk';
import { attachConsolesOnFailure } from './harness/guest';
import { GUEST_AGENT_CONFIG } from './harness/guest-init';

const HOST = 'pen-host';
const MiB = 1024 * 1024;
const MEMORY_HIGH_MIB = 32;
const READ_MIB = 96;
const WRITE_MIB = 24;

/**
 * The backup: reads a file of READ_MIB, writes WRITE_MIB through the page cache and syncs, then records
 * what its own cgroup says (the one /proc/$$/cgroup names).
 */
const JOB_SCRIPT = [
  // The agent moves the shell into the job's group right after the spawn; what the shell forks before
  // that moment is brought in later, so the work waits until the shell is there.
  'while grep -qx "0::/" /proc/$$/cgroup; do sleep 0.1; done',
  'g=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/$$/cgroup)',
  'cat /mnt/data/big > /dev/null',
  `dd if=/dev/zero of=/mnt/data/out bs=1M count=${WRITE_MIB} 2>/dev/null`,
  'sync',
  '{ echo "cgroup $g"; echo "subtree $(cat $g/../cgroup.subtree_control)"; echo "high $(cat $g/memory.high)";',
  'echo "peak $(cat $g/memory.peak)"; echo "iomax $(cat $g/io.max)"; echo "weight $(cat $g/cpu.weight)";',
  'cat $g/io.stat; } > /tmp/job-report',
].join('\n');

describe('VM: memory.high, writeback and CPU weight of a guest backup under cgroup v2', function () {
  let s: AgentGuest;
  attachConsolesOnFailure(() => [s?.guest]);

  before(async () => {
    s = await startAgentGuest({
      host: HOST,
      name: `pen-memory-${process.pid}`,
      agentConfig: [
        `budget: { memoryHighMiB: ${MEMORY_HIGH_MIB} }`,
        'jobs:',
        '  - name: read-and-write',
        "    schedule: '0 0 1 1 *'",
        '    window: 1h',
        '    expectedDuration: 1m',
        `    command: [sh, -c, ${JSON.stringify(JOB_SCRIPT)}]`,
      ],
      disks: (dir) => [{ path: makeExt4Disk(path.join(dir, 'data.qcow2'), { sizeMiB: 192 }), mountPoint: '/mnt/data' }],
    });
    // A generous I/O budget: io.max is set, and the test does not wait on it.
    await unary(s.admin.admin.SetPolicy.bind(s.admin.admin), { host: HOST, budgetIoBytesPerSec: 64 * MiB });
    await s.guest!.sh(
      `dd if=/dev/urandom of=/mnt/data/big bs=1M count=${READ_MIB} 2>/dev/null && sync && echo 3 > /proc/sys/vm/drop_caches`,
    );
  });

  after(async () => {
    await s?.close();
  });

  it("holds the backup's page cache to memory.high, charges its buffered writes to its group, and gives it the least CPU weight", async () => {
    await s.guest!.sh(
      `(headroom-agent exec --config ${GUEST_AGENT_CONFIG} --job read-and-write > /tmp/exec.log 2>&1; echo $? > /tmp/exec.rc) &`,
    );
    let rc = '';
    await waitFor(
      async () => (rc = (await s.guest!.run('cat /tmp/exec.rc 2>/dev/null')).output.toString().trim()) !== '',
      240_000,
      'the guest job to end',
    );
    assert.equal(rc, '0', await s.guest!.sh('cat /tmp/exec.log'));
    const report = await s.guest!.sh('cat /tmp/job-report /tmp/exec.log');
    const field = (name: string) => new RegExp(`^${name} (.*)$`, 'm').exec(report)?.[1] ?? assert.fail(report);

    assert.match(field('subtree'), /\bmemory\b/, report);
    assert.match(field('subtree'), /\bio\b/, report);
    assert.equal(Number(field('high')), MEMORY_HIGH_MIB * MiB, report);
    assert.match(field('iomax'), new RegExp(`rbps=${64 * MiB} wbps=${64 * MiB}`), report);
    // The least weight: under its cap the backup yields the vCPU to the guest's own work.
    assert.equal(field('weight'), '1', report);
    // Without memory.high the whole file would have stayed in the group's page cache.
    const peak = Number(field('peak'));
    assert.ok(peak > 0 && peak < (READ_MIB * MiB) / 2, `peak ${peak} of a ${READ_MIB} MiB read:\n${report}`);
    // Writeback of its dirty pages counted for the group: io.max holds it (v1 and a v2 group without the
    // memory controller leave it to the root group).
    const written = [...report.matchAll(/\bwbytes=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(written >= WRITE_MIB * MiB, `wbytes ${written} after writing ${WRITE_MIB} MiB:\n${report}`);
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as sinon from 'sinon';
import { prepareCgroupV2, Prepared } from '../../../../../common/backup-run/budget/cgroup-v2';
import type { EnforcementMechanism } from '../../../../../common/backup-run/budget/enforcer';
import { tempDir } from '../../../../helpers/coordinator-process';
import { captureLog } from '../guarded-run-fakes';
import { fakeSysBlock, read, removeTree, tree } from './cgroup-tree';
import { FakeProc } from './fake-proc';

const SELF = 500;
const AGENT = '/system.slice/headroom-agent.service';

/** A cgroup2 mount in a temporary directory with the agent's service cgroup, offering cpu, io and memory. */
function setup(files: Record<string, string> = {}) {
  const root = tempDir();
  const mount = tree(path.join(root, 'cgroup'), {
    'cgroup.controllers': 'cpuset cpu io memory pids\n',
    'system.slice/headroom-agent.service/cgroup.controllers': 'cpu io memory\n',
    'system.slice/headroom-agent.service/cgroup.subtree_control': '',
    'system.slice/headroom-agent.service/cgroup.procs': `${SELF}\n`,
    ...files,
  });
  const proc = new FakeProc().set(4242, { pgrp: 4242 }).set(4243, { pgrp: 4242 }).set(4250, { pgrp: 4242 });
  const { log, lines } = captureLog();
  const prepare = (parent?: string, memoryHighBytes?: number, background = true): Prepared =>
    prepareCgroupV2({
      mount,
      own: AGENT,
      parent,
      memoryHighBytes,
      background,
      log,
      selfPid: SELF,
      sysBlock: fakeSysBlock(root),
      proc,
      removeDir: removeTree,
      alive: (pid) => pid === SELF,
    });
  return { mount, agentDir: path.join(mount, AGENT), proc, prepare, lines };
}

function mechanismOf(p: Prepared): EnforcementMechanism {
  assert.ok('mechanism' in p, `expected a mechanism, got: ${'reason' in p ? p.reason : ''}`);
  return p.mechanism;
}

describe('cgroup v2 enforcement (fake cgroup tree)', () => {
  afterEach(() => sinon.restore());

  it("hands the cpu, io and memory controllers to the agent's children, and puts a backup's group in its own cgroup", () => {
    const { agentDir, prepare } = setup();
    const mechanism = mechanismOf(prepare());
    // memory beside io: the kernel charges a group's writeback to it only with both.
    assert.equal(read(`${agentDir}/cgroup.subtree_control`), '+cpu +io +memory');
    const e = mechanism.enforce({ pgid: 4242, exempt: () => 4243 });
    const dir = `${agentDir}/headroom-${SELF}-4242`;
    assert.equal(e.enforcement, 'CGROUP_V2');
    assert.equal(
      e.detail,
      `cgroup v2 ${dir}: cpu.max and cpu.weight 1, io.max on vda (read and write each held to the budget, buffered writes included), ` +
        'memory.high (its page cache included), cgroup.freeze',
    );
    // The leader first, then the member forked before it moved; never the watchdog (4243).
    assert.equal(read(`${dir}/cgroup.procs`), '4250');
  });

  it('writes cpu.max and io.max for a budget, and "max" for no limit', () => {
    const { agentDir, prepare } = setup();
    const e = mechanismOf(prepare()).enforce({ pgid: 4242, exempt: () => undefined });
    const dir = `${agentDir}/headroom-${SELF}-4242`;
    e.apply({ cpuPercent: 20, ioBytesPerSec: 10e6 });
    assert.equal(read(`${dir}/cpu.max`), '20000 100000');
    assert.equal(read(`${dir}/cpu.weight`), '1', 'a guest backup yields the CPU to its peers');
    assert.equal(read(`${dir}/io.max`), '254:0 rbps=10000000 wbps=10000000');
    e.apply({ cpuPercent: 250, ioBytesPerSec: 0 });
    assert.equal(read(`${dir}/cpu.max`), '250000 100000');
    assert.equal(read(`${dir}/io.max`), '254:0 rbps=max wbps=max');
    e.apply({ cpuPercent: 0, ioBytesPerSec: 0 });
    assert.equal(read(`${dir}/cpu.max`), 'max 100000');
  });

  it("leaves a hypervisor backup's group at the default CPU weight: it must progress at its cap on a busy host", () => {
    const { agentDir, prepare } = setup();
    const e = mechanismOf(prepare(undefined, undefined, false)).enforce({ pgid: 4242, exempt: () => undefined });
    e.apply({ cpuPercent: 20, ioBytesPerSec: 0 });
    assert.equal(fs.existsSync(`${agentDir}/headroom-${SELF}-4242/cpu.weight`), false);
    assert.match(e.detail, /: cpu\.max, io\.max/);
  });

  it('holds the group to memory.high: 8 s of its I/O budget within 64..512 MiB by default, or as configured', () => {
    const MiB = 1024 * 1024;
    const derived = setup();
    const e = mechanismOf(derived.prepare()).enforce({ pgid: 4242, exempt: () => undefined });
    const high = () => read(`${derived.agentDir}/headroom-${SELF}-4242/memory.high`);
    e.apply({ cpuPercent: 20, ioBytesPerSec: 20 * MiB });
    assert.equal(high(), String(160 * MiB));
    e.apply({ cpuPercent: 20, ioBytesPerSec: 1 * MiB });
    assert.equal(high(), String(64 * MiB));
    e.apply({ cpuPercent: 20, ioBytesPerSec: 200 * MiB });
    assert.equal(high(), String(512 * MiB));
    e.apply({ cpuPercent: 0, ioBytesPerSec: 0 });
    assert.equal(high(), String(512 * MiB));

    const configured = setup();
    const fixed = mechanismOf(configured.prepare(undefined, 96 * MiB)).enforce({ pgid: 4242, exempt: () => undefined });
    fixed.apply({ cpuPercent: 20, ioBytesPerSec: 20 * MiB });
    assert.equal(read(`${configured.agentDir}/headroom-${SELF}-4242/memory.high`), String(96 * MiB));

    const off = setup();
    const none = mechanismOf(off.prepare(undefined, 0)).enforce({ pgid: 4242, exempt: () => undefined });
    none.apply({ cpuPercent: 20, ioBytesPerSec: 20 * MiB });
    assert.equal(read(`${off.agentDir}/headroom-${SELF}-4242/memory.high`), 'max');
    assert.match(none.detail, /memory not held \(budget\.memoryHighMiB: 0\)/);
  });

  it('works without a memory controller, saying that memory and buffered writes are not held', () => {
    const { agentDir, prepare } = setup({ [`${AGENT}/cgroup.controllers`]: 'cpu io\n' });
    const e = mechanismOf(prepare()).enforce({ pgid: 4242, exempt: () => undefined });
    assert.equal(read(`${agentDir}/cgroup.subtree_control`), '+cpu +io');
    e.apply({ cpuPercent: 20, ioBytesPerSec: 10e6 });
    assert.equal(fs.existsSync(`${agentDir}/headroom-${SELF}-4242/memory.high`), false);
    assert.match(
      e.detail,
      /buffered writes not held: no memory controller\), memory not held \(no memory controller\)/,
    );
  });

  it('sends the watchdog home before freezing the group, and thaws it on resume and on release', () => {
    const { agentDir, prepare, proc } = setup();
    proc.processes.delete(4250);
    const e = mechanismOf(prepare()).enforce({ pgid: 4242, exempt: () => 4243 });
    const dir = `${agentDir}/headroom-${SELF}-4242`;
    fs.writeFileSync(`${dir}/cgroup.procs`, '4242\n4243\n'); // the watchdog had been forked inside
    e.pause();
    assert.equal(read(`${agentDir}/cgroup.procs`), '4243');
    assert.equal(read(`${dir}/cgroup.freeze`), '1');
    e.resume();
    assert.equal(read(`${dir}/cgroup.freeze`), '0');
    e.pause();
    e.release();
    assert.equal(read(`${dir}/cgroup.freeze`), '0');
  });

  it("reads the group's CPU time and I/O bytes from cpu.stat and io.stat, and keeps them once it is removed", async () => {
    const { agentDir, prepare } = setup();
    const e = mechanismOf(prepare()).enforce({ pgid: 4242, exempt: () => undefined });
    const dir = `${agentDir}/headroom-${SELF}-4242`;
    fs.writeFileSync(`${dir}/cpu.stat`, 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n');
    fs.writeFileSync(
      `${dir}/io.stat`,
      '254:0 rbytes=1000 wbytes=24 rios=3 wios=1 dbytes=0 dios=0\n7:0 rbytes=10 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
    );
    assert.deepEqual(e.usage(), { cpuSeconds: 2.5, ioBytes: 1034 });
    fs.writeFileSync(`${dir}/cgroup.procs`, ''); // the processes are gone
    await e.close();
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(e.usage(), { cpuSeconds: 2.5, ioBytes: 1034 });
  });

  it('removes the groups an agent that is gone left behind, thawing them, and keeps those of live agents', () => {
    const { agentDir, prepare, lines } = setup({
      [`${AGENT}/headroom-999-77/cgroup.freeze`]: '1',
      [`${AGENT}/headroom-999-77/cgroup.procs`]: '',
      [`${AGENT}/headroom-${SELF}-78/cgroup.procs`]: '',
      [`${AGENT}/other/cgroup.procs`]: '',
    });
    mechanismOf(prepare());
    assert.deepEqual(
      fs
        .readdirSync(agentDir)
        .filter((n) => !n.startsWith('cgroup.'))
        .sort(),
      [`headroom-${SELF}-78`, 'other'],
    );
    assert.ok(lines.some((l) => l.msg === 'removed cgroups left by an agent that is gone'));
  });

  it('says why it cannot be used when the controllers are not there, as beside cgroup v1', () => {
    const { prepare, agentDir } = setup({ [`${AGENT}/cgroup.controllers`]: 'hugetlb\n' });
    assert.deepEqual(prepare(), {
      reason: `cgroup v2: the cpu and io controllers are not available in ${agentDir} (it has: hugetlb)`,
    });
    const { prepare: noParent, mount } = setup();
    assert.deepEqual(noParent('/nowhere'), { reason: `cgroup v2: no cgroup ${mount}/nowhere` });
  });

  it('moves the agent into a leaf when its cgroup must hand out controllers, and refuses a parent that holds other processes', () => {
    const { agentDir, prepare, proc } = setup();
    proc.processes.delete(4250);
    // The kernel refuses controllers for children of a cgroup that holds processes (EBUSY).
    const nodeFs: typeof fs = require('node:fs');
    const realWrite = nodeFs.writeFileSync;
    let refusals = 1;
    sinon.stub(nodeFs, 'writeFileSync').callsFake((file, data) => {
      if (String(file).endsWith('cgroup.subtree_control') && refusals-- > 0)
        throw Object.assign(new Error('EBUSY'), { code: 'EBUSY' });
      realWrite(file, data);
    });
    const mechanism = mechanismOf(prepare());
    assert.equal(read(`${agentDir}/headroom-agent/cgroup.procs`), String(SELF));
    assert.equal(read(`${agentDir}/cgroup.subtree_control`), '+cpu +io +memory');
    // The watchdog goes back to the leaf the agent is in now.
    const e = mechanism.enforce({ pgid: 4242, exempt: () => 4243 });
    fs.writeFileSync(`${agentDir}/headroom-${SELF}-4242/cgroup.procs`, '4242\n4243\n');
    e.pause();
    assert.equal(read(`${agentDir}/headroom-agent/cgroup.procs`), '4243');

    const other = setup({ [`${AGENT}/cgroup.procs`]: `${SELF}\n600\n` });
    refusals = 1;
    const refused = other.prepare();
    assert.ok(
      'reason' in refused && /\(EBUSY\): it holds other processes; set budget\.cgroupParent/.test(refused.reason),
      JSON.stringify(refused),
    );
  });
});

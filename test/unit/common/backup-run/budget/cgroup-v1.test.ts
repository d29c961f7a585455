import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCgroupMounts, parseProcCgroup } from '../../../../../common/backup-run/budget/cgroup-mounts';
import { prepareCgroupV1, CgroupV1Options } from '../../../../../common/backup-run/budget/cgroup-v1';
import type { Prepared } from '../../../../../common/backup-run/budget/cgroup-v2';
import { detectEnforcement } from '../../../../../common/backup-run/budget/detect';
import type { EnforcementMechanism } from '../../../../../common/backup-run/budget/enforcer';
import { spawnChild } from '../../../../../common/backup-run/child-process';
import { tempDir } from '../../../../helpers/coordinator-process';
import { captureLog } from '../guarded-run-fakes';
import { fakeSysBlock, read, removeTree, tree } from './cgroup-tree';
import { FakeProc } from './fake-proc';

const SELF = 500;

function mechanismOf(p: Prepared): EnforcementMechanism {
  assert.ok('mechanism' in p, `expected a mechanism, got: ${'reason' in p ? p.reason : ''}`);
  return p.mechanism;
}

/** v1 hierarchies in a temporary directory: cpu and cpuacct mounted together, blkio, freezer; the agent in their roots. */
function fakeV1(files: Record<string, string> = {}) {
  const root = tempDir();
  tree(root, {
    'cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
    'cpu,cpuacct/cgroup.procs': `${SELF}\n`,
    'blkio/blkio.throttle.read_bps_device': '',
    'blkio/cgroup.procs': `${SELF}\n`,
    'freezer/cgroup.procs': `${SELF}\n`,
    ...files,
  });
  const mounts = [
    { path: `${root}/cpu,cpuacct`, version: 1 as const, controllers: ['cpu', 'cpuacct'] },
    { path: `${root}/blkio`, version: 1 as const, controllers: ['blkio'] },
    { path: `${root}/freezer`, version: 1 as const, controllers: ['freezer'] },
  ];
  const own = new Map([
    ['cpu', '/'],
    ['cpuacct', '/'],
    ['blkio', '/'],
    ['freezer', '/'],
  ]);
  const proc = new FakeProc().set(4242, { pgrp: 4242, ioBytes: 3000 }).set(4243, { pgrp: 4242 });
  const options = (o: Partial<CgroupV1Options> = {}): CgroupV1Options => ({
    mounts,
    own,
    log: captureLog().log,
    selfPid: SELF,
    sysBlock: fakeSysBlock(root),
    proc,
    removeDir: removeTree,
    alive: (pid) => pid === SELF,
    ...o,
  });
  return { root, options, proc };
}

describe('cgroup v1 enforcement (fake hierarchies)', () => {
  it('makes the group in each hierarchy once (cpu and cpuacct share one) and sets the CFS quota and blkio rules', () => {
    const { root, options } = fakeV1();
    const e = mechanismOf(prepareCgroupV1(options({ background: true }))).enforce({ pgid: 4242, exempt: () => 4243 });
    const name = `headroom-${SELF}-4242`;
    assert.deepEqual(
      ['cpu,cpuacct', 'blkio', 'freezer'].map((h) => read(`${root}/${h}/${name}/cgroup.procs`)),
      ['4242', '4242', '4242'],
    );
    assert.match(
      e.detail,
      new RegExp(
        `^cgroup v1 ${root}/cpu,cpuacct/${name} \\(cpu, blkio, freezer\\): CFS quota and cpu.shares 2, blkio throttling on vda, freezer; buffered writes`,
      ),
    );
    e.apply({ cpuPercent: 30, ioBytesPerSec: 5e6 });
    assert.equal(read(`${root}/cpu,cpuacct/${name}/cpu.cfs_period_us`), '100000');
    assert.equal(read(`${root}/cpu,cpuacct/${name}/cpu.cfs_quota_us`), '30000');
    assert.equal(read(`${root}/cpu,cpuacct/${name}/cpu.shares`), '2', 'a guest backup yields the CPU to its peers');
    assert.equal(read(`${root}/blkio/${name}/blkio.throttle.read_bps_device`), '254:0 5000000');
    assert.equal(read(`${root}/blkio/${name}/blkio.throttle.write_bps_device`), '254:0 5000000');
    e.apply({ cpuPercent: 0, ioBytesPerSec: 0 });
    assert.equal(read(`${root}/cpu,cpuacct/${name}/cpu.cfs_quota_us`), '-1');
    assert.equal(read(`${root}/blkio/${name}/blkio.throttle.read_bps_device`), '254:0 0');
  });

  it('freezes with the watchdog sent home first, thaws on resume and release; CPU from cpuacct, I/O from /proc', async () => {
    const { root, options } = fakeV1();
    const e = mechanismOf(prepareCgroupV1(options())).enforce({ pgid: 4242, exempt: () => 4243 });
    const dir = (h: string) => `${root}/${h}/headroom-${SELF}-4242`;
    fs.writeFileSync(`${dir('freezer')}/cgroup.procs`, '4242\n4243\n');
    e.pause();
    assert.equal(read(`${root}/freezer/cgroup.procs`), '4243');
    assert.equal(read(`${dir('freezer')}/freezer.state`), 'FROZEN');
    e.resume();
    assert.equal(read(`${dir('freezer')}/freezer.state`), 'THAWED');
    e.pause();
    e.release();
    assert.equal(read(`${dir('freezer')}/freezer.state`), 'THAWED');
    fs.writeFileSync(`${dir('cpu,cpuacct')}/cpuacct.usage`, '1500000000\n');
    assert.deepEqual(e.usage(), { cpuSeconds: 1.5, ioBytes: 3000 });
    for (const h of ['cpu,cpuacct', 'blkio', 'freezer']) fs.writeFileSync(`${dir(h)}/cgroup.procs`, '');
    await e.close();
    assert.deepEqual(
      ['cpu,cpuacct', 'blkio', 'freezer'].filter((h) => fs.existsSync(dir(h))),
      [],
    );
  });

  it('thaws and removes what an agent that is gone left frozen', () => {
    const { root, options } = fakeV1({
      'freezer/headroom-999-7/freezer.state': 'FROZEN\n',
      'freezer/headroom-999-7/cgroup.procs': '',
    });
    mechanismOf(prepareCgroupV1(options()));
    assert.equal(fs.existsSync(`${root}/freezer/headroom-999-7`), false);
  });

  it('says why it cannot be used: a hierarchy missing, or a kernel without CFS bandwidth control', () => {
    const { options, root } = fakeV1();
    const noBlkio = options();
    assert.deepEqual(
      prepareCgroupV1({ ...noBlkio, mounts: noBlkio.mounts.filter((m) => !m.controllers.includes('blkio')) }),
      {
        reason: 'cgroup v1: no blkio hierarchy mounted',
      },
    );
    fs.rmSync(`${root}/cpu,cpuacct/cpu.cfs_quota_us`);
    assert.deepEqual(prepareCgroupV1(options()), { reason: `cgroup v1: no cpu.cfs_quota_us in ${root}/cpu,cpuacct` });
  });
});

describe("cgroup v1 enforcement (this machine's /sys/fs/cgroup)", function () {
  this.timeout(20_000);

  it('holds a real process group in real v1 groups and removes them, or, without writable v1, detection does not pick it', async () => {
    const { log } = captureLog();
    const mounts = parseCgroupMounts(fs.readFileSync('/proc/self/mounts', 'utf8'));
    const own = parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8')).v1;
    const prepared = prepareCgroupV1({ mounts, own, log });
    if ('reason' in prepared) {
      // No usable v1 here: detection must fall through to something else, saying why.
      const mechanism = detectEnforcement({ mode: 'auto', log });
      assert.notEqual(mechanism.enforcement, 'CGROUP_V1');
      if (mechanism.enforcement === 'SIGNALS') assert.ok(mechanism.detail.includes(prepared.reason), mechanism.detail);
      return;
    }
    // Usable here: detection takes it, unless cgroup v2 can do the job.
    assert.ok(['CGROUP_V2', 'CGROUP_V1'].includes(detectEnforcement({ mode: 'auto', log }).enforcement));
    const child = spawnChild(['sleep', '30'], { stdio: 'ignore' });
    const e = prepared.mechanism.enforce({ pgid: child.pid!, exempt: () => child.watchdogPid });
    const dirOf = (controller: string) => {
      const m = mounts.find((x) => x.controllers.includes(controller))!;
      return path.join(m.path, own.get(controller) ?? '/', `headroom-${process.pid}-${child.pid}`);
    };
    try {
      assert.ok(
        fs
          .readFileSync(`${dirOf('cpu')}/cgroup.procs`, 'utf8')
          .split('\n')
          .includes(String(child.pid)),
      );
      e.apply({ cpuPercent: 20, ioBytesPerSec: 10e6 });
      assert.equal(read(`${dirOf('cpu')}/cpu.cfs_quota_us`).trim(), '20000');
      assert.match(read(`${dirOf('blkio')}/blkio.throttle.read_bps_device`), /^\d+:\d+ 10000000$/m);
      await child.watchdogReady;
      e.pause();
      assert.match(read(`${dirOf('freezer')}/freezer.state`), /FREEZING|FROZEN/);
      const watchdogFreezer = fs.readFileSync(`/proc/${child.watchdogPid}/cgroup`, 'utf8');
      assert.ok(
        !watchdogFreezer.includes(`headroom-${process.pid}-${child.pid}`),
        `the watchdog is outside every group:\n${watchdogFreezer}`,
      );
      const stopped = child.stop(5_000);
      e.release();
      assert.equal(read(`${dirOf('freezer')}/freezer.state`).trim(), 'THAWED');
      assert.equal((await stopped).signal, 'SIGTERM');
    } finally {
      e.release();
      await child.stop(0);
      await e.close();
    }
    for (const c of ['cpu', 'blkio', 'freezer']) assert.equal(fs.existsSync(dirOf(c)), false, `${dirOf(c)} removed`);
  });
});

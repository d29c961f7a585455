import { strict as assert } from 'node:assert';
import { detectEnforcement, DetectOptions } from '../../../../../common/backup-run/budget/detect';
import { EnforcementUnavailableError } from '../../../../../common/backup-run/budget/enforcer';
import { tempDir } from '../../../../helpers/coordinator-process';
import { captureLog } from '../guarded-run-fakes';
import { fakeSysBlock, removeTree, tree } from './cgroup-tree';
import { FakeProc } from './fake-proc';

/**
 * A guest in a temporary directory: a cgroup2 mount whose root offers `v2Controllers`, and, with
 * `v1`, cpu, blkio and freezer hierarchies beside it. The agent sits in the roots.
 */
function guest(v2Controllers: string, v1: boolean) {
  const root = tempDir();
  tree(root, {
    'unified/cgroup.controllers': `${v2Controllers}\n`,
    'unified/cgroup.subtree_control': '',
    'cpu/cpu.cfs_quota_us': '-1\n',
    'blkio/blkio.throttle.read_bps_device': '',
    'freezer/': '',
  });
  const mounts = [`cgroup2 ${root}/unified cgroup2 rw 0 0`];
  if (v1)
    mounts.push(
      `cgroup ${root}/cpu cgroup rw,cpu 0 0`,
      `cgroup ${root}/blkio cgroup rw,blkio 0 0`,
      `cgroup ${root}/freezer cgroup rw,freezer 0 0`,
    );
  const { log, lines } = captureLog();
  const detect = (o: Partial<DetectOptions> = {}) =>
    detectEnforcement({
      mode: 'auto',
      log,
      mounts: mounts.join('\n'),
      selfCgroup: '4:cpu:/\n3:blkio:/\n2:freezer:/\n0::/\n',
      sysBlock: fakeSysBlock(root),
      proc: new FakeProc(),
      removeDir: removeTree,
      signals: { ionice: undefined },
      ...o,
    });
  return { root, detect, lines };
}

describe('choosing the enforcement mechanism', () => {
  it('takes cgroup v2 when its cpu and io controllers can be handed to child groups', () => {
    const m = guest('cpu io memory', true).detect();
    assert.equal(m.enforcement, 'CGROUP_V2');
    assert.equal(m.detail, '');
    assert.equal(m.fallback?.enforcement, 'SIGNALS', 'for a backup whose cgroup cannot be made');
  });

  it('takes cgroup v1 when the controllers are bound to v1 hierarchies, saying why not v2, in the log too', () => {
    const g = guest('hugetlb', true);
    const m = g.detect();
    assert.equal(m.enforcement, 'CGROUP_V1');
    assert.equal(
      m.detail,
      `cgroup v2: the cpu and io controllers are not available in ${g.root}/unified (it has: hugetlb)`,
    );
    const line = g.lines.find((l) => l.msg === 'backups will be held to their budgets with this mechanism');
    assert.deepEqual([line?.enforcement, line?.notUsed], ['CGROUP_V1', m.detail]);
  });

  it('falls back to signals, saying why neither cgroup version could be used', () => {
    const g = guest('hugetlb', false);
    const m = g.detect();
    assert.equal(m.enforcement, 'SIGNALS');
    assert.equal(
      m.detail,
      `cgroup v2: the cpu and io controllers are not available in ${g.root}/unified (it has: hugetlb); cgroup v1: no cpu, blkio, freezer hierarchy mounted`,
    );
    assert.equal(
      guest('cpu io', true).detect({ mounts: '' }).detail,
      'cgroup v2: not mounted; cgroup v1: no cpu, blkio, freezer hierarchy mounted',
    );
  });

  it('uses the mechanism the configuration forces, or refuses to start saying why it cannot be used', () => {
    const g = guest('cpu io', true);
    assert.equal(g.detect({ mode: 'cgroup-v1' }).enforcement, 'CGROUP_V1');
    const forcedSignals = g.detect({ mode: 'signals' });
    assert.deepEqual(
      [forcedSignals.enforcement, forcedSignals.detail],
      ['SIGNALS', 'budget.enforcement asks for signals'],
    );
    assert.throws(
      () => guest('hugetlb', true).detect({ mode: 'cgroup-v2' }),
      (err: unknown) =>
        err instanceof EnforcementUnavailableError &&
        err.mode === 'cgroup-v2' &&
        /^cgroup-v2 was asked for but cannot be used here: cgroup v2: the cpu and io controllers are not available/.test(
          err.message,
        ),
    );
  });
});

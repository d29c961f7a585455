import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../../common/util/config-error';
import { compileCoordinatorOptions, loadConfigFile } from '../../../coordinator/config';
import { DEFAULT_POLICY } from '../../../coordinator/domain/policy';
import { tempDir } from '../../helpers/coordinator-process';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

describe('coordinator configuration', () => {
  it('applies defaults: loopback address, full durability, the default policy', () => {
    const o = compileCoordinatorOptions({ host: 'pve-1', plaintext: true }, 'test.yaml');
    assert.equal(o.listen, '127.0.0.1:7400');
    assert.equal(o.durability, 'full');
    assert.deepEqual(o.policy, DEFAULT_POLICY);
  });

  it('reads durations and policy keys with units', () => {
    const o = compileCoordinatorOptions(
      { host: 'h', plaintext: true, policy: { leaseTtl: '1m', reportInterval: 5000, maxGuestTokens: 2 } },
      'x',
    );
    assert.equal(o.policy.leaseTtlMs, 60_000);
    assert.equal(o.policy.reportIntervalMs, 5000);
    assert.equal(o.policy.maxGuestTokens, 2);
  });

  it('collects every problem, each naming the file and the key', () => {
    const found = problems(() =>
      compileCoordinatorOptions(
        {
          listen: '10.1.2.3:7400',
          durability: 'fast',
          colour: 'blue',
          policy: { leaseTtl: 'soon', maxGuestTokens: 0 },
        },
        '/etc/headroom/coordinator.yaml',
      ),
    );
    assert.equal(found.length, 5, found.join('\n'));
    for (const key of ['colour', 'durability', 'listen', 'policy.leaseTtl', 'policy.maxGuestTokens']) {
      assert.ok(
        found.some((p) => p.startsWith(`/etc/headroom/coordinator.yaml: ${key}: `)),
        `${key} in ${found.join('\n')}`,
      );
    }
    assert.ok(
      found.some((p) => /not a loopback address, so pki.dir \(or tls with its clientCaFile\) is required/.test(p)),
    );
  });

  it('serves plaintext only when asked for, and only on a loopback address', () => {
    assert.equal(compileCoordinatorOptions({ host: 'h', plaintext: true }, 'x').plaintext, true);
    assert.deepEqual(
      problems(() => compileCoordinatorOptions({ host: 'h' }, 'c.yaml')),
      [
        'c.yaml: plaintext: no TLS for 127.0.0.1:7400: give pki.dir (or tls), or plaintext: true (--plaintext) to serve plaintext on this loopback address',
      ],
    );
    assert.deepEqual(
      problems(() => compileCoordinatorOptions({ host: 'h', listen: '10.1.2.3:7400', plaintext: true }, 'c.yaml')),
      [
        'c.yaml: listen: 10.1.2.3:7400 is not a loopback address, so pki.dir (or tls with its clientCaFile) is required',
      ],
    );
    assert.deepEqual(
      problems(() => compileCoordinatorOptions({ host: 'h', plaintext: 'yes' }, 'c.yaml')),
      ['c.yaml: plaintext: expected true or false, got "yes"'],
    );
  });

  it('refuses TLS without client certificates on a non-loopback address, unless allowAnonymous says it is meant', () => {
    const dir = tempDir();
    const pem = path.join(dir, 'x.pem');
    fs.writeFileSync(pem, 'x');
    const tls = { certFile: pem, keyFile: pem };
    assert.deepEqual(
      problems(() => compileCoordinatorOptions({ host: 'h', listen: '10.1.2.3:7400', tls }, 'c.yaml')),
      [
        'c.yaml: tls.clientCaFile: missing: 10.1.2.3:7400 is not a loopback address, and without client certificates every caller could make every call, admin ones included; give tls.clientCaFile (or pki.dir instead of tls), or tls.allowAnonymous: true (--tls-allow-anonymous) to allow that knowingly',
      ],
    );
    assert.equal(
      compileCoordinatorOptions({ host: 'h', listen: '10.1.2.3:7400', tls: { ...tls, allowAnonymous: true } }, 'c.yaml')
        .tls?.allowAnonymous,
      true,
    );
    assert.equal(
      compileCoordinatorOptions({ host: 'h', listen: '10.1.2.3:7400', tls: { ...tls, clientCaFile: pem } }, 'c.yaml')
        .tls?.clientCaFile,
      pem,
    );
    assert.equal(
      compileCoordinatorOptions({ host: 'h', listen: '127.0.0.1:7400', tls }, 'c.yaml').tls?.allowAnonymous,
      undefined,
      'loopback: allowed, with its warning',
    );
    assert.deepEqual(
      problems(() => compileCoordinatorOptions({ host: 'h', tls: { ...tls, allowAnonymous: 'yes' } }, 'c.yaml')),
      ['c.yaml: tls.allowAnonymous: expected true or false, got "yes"'],
    );
  });

  it("takes pki.dir (the coordinator's own CA) for a non-loopback address, alone and made by pki init", () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'ca.pem'), 'x');
    const o = compileCoordinatorOptions({ host: 'h', listen: '10.1.2.3:7400', pki: { dir } }, 'c.yaml');
    assert.deepEqual(o.pki, { dir });
    const empty = tempDir();
    const found = problems(() =>
      compileCoordinatorOptions(
        {
          host: 'h',
          pki: { dir: empty, colour: 1 },
          tls: { certFile: path.join(dir, 'ca.pem'), keyFile: path.join(dir, 'ca.pem') },
        },
        'c.yaml',
      ),
    );
    assert.deepEqual(found.map((p) => p.split(': ')[1]).sort(), ['pki', 'pki.colour', 'pki.dir']);
    assert.ok(
      found.some((p) => p.includes(`${empty} holds no CA (ca.pem): run headroomctl pki init --dir ${empty} first`)),
      found.join('\n'),
    );
    assert.ok(
      found.some((p) => /give pki .* or tls .*, not both/.test(p)),
      found.join('\n'),
    );
  });

  describe('cluster mode (etcd)', () => {
    const etcd = (extra: Record<string, unknown> = {}) => ({
      endpoints: ['10.0.0.9:2379'],
      cluster: 'prod',
      peerListen: '10.0.0.1:7410',
      ...extra,
    });
    const pkiDir = (member: boolean) => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'ca.pem'), 'x');
      if (member) fs.writeFileSync(path.join(dir, 'member.pem'), 'x');
      return dir;
    };

    it('takes any addresses with pki, and etcd.tls with files that exist', () => {
      const dir = pkiDir(true);
      const file = path.join(dir, 'ca.pem');
      const o = compileCoordinatorOptions(
        {
          host: 'h',
          listen: '10.0.0.1:7400',
          pki: { dir },
          etcd: etcd({ tls: { caFile: file, certFile: file, keyFile: file, serverName: 'etcd.example.org' } }),
        },
        'c.yaml',
      );
      assert.equal(o.etcd?.peerListen, '10.0.0.1:7410');
      assert.deepEqual(o.etcd?.tls, { caFile: file, certFile: file, keyFile: file, serverName: 'etcd.example.org' });
    });

    it('refuses a non-loopback peer address without pki, and tls instead of pki, naming each key', () => {
      const cert = path.join(pkiDir(true), 'ca.pem');
      const found = problems(() =>
        compileCoordinatorOptions(
          { host: 'h', tls: { certFile: cert, keyFile: cert, clientCaFile: cert }, etcd: etcd() },
          'c.yaml',
        ),
      );
      assert.deepEqual(found.map((p) => p.split(': ')[1]).sort(), ['etcd.peerListen', 'tls']);
      assert.ok(
        found.some((p) => /without pki members forward in plaintext/.test(p)),
        found.join('\n'),
      );
      assert.ok(
        found.some((p) => /secures its members with pki .* not tls/.test(p)),
        found.join('\n'),
      );
    });

    it('refuses etcd.tls files that do not exist, naming the key', () => {
      const dir = pkiDir(true);
      const cert = path.join(dir, 'ca.pem');
      const tls = { caFile: '/nonexistent/ca.pem', certFile: cert, keyFile: cert };
      assert.deepEqual(
        problems(() => compileCoordinatorOptions({ host: 'h', pki: { dir }, etcd: etcd({ tls }) }, 'c.yaml')),
        ['c.yaml: etcd.tls.caFile: no such file: /nonexistent/ca.pem'],
      );
    });

    it('refuses a pki directory without a member certificate, saying how to make one', () => {
      const dir = pkiDir(false);
      const found = problems(() =>
        compileCoordinatorOptions({ host: 'h', listen: '10.0.0.1:7400', pki: { dir }, etcd: etcd() }, 'c.yaml'),
      );
      assert.deepEqual(found, [
        `c.yaml: pki.dir: ${path.join(dir, 'member.pem')} is missing: cluster members forward with it; run headroomctl pki reissue-server --dir ${dir} --member HOST`,
      ]);
    });
  });

  it("reads the budget controller's thresholds, budgets and durations", () => {
    const o = compileCoordinatorOptions(
      {
        host: 'h',
        plaintext: true,
        policy: {
          throttleAboveCpuPercent: 40,
          pauseAboveCpuPercent: 70,
          resumeBelowCpuPercent: 30,
          throttleAboveIoBytesPerSec: 100_000_000,
          resumeBelowIoBytesPerSec: 50_000_000,
          budgetCpuPercent: 150,
          throttledIoBytesPerSec: 0,
          budgetDwell: '1m',
          maxPause: '15m',
          pauseWindowGuard: 0,
        },
      },
      'x',
    );
    assert.deepEqual(o.policy, {
      ...DEFAULT_POLICY,
      throttleAboveCpuPercent: 40,
      pauseAboveCpuPercent: 70,
      resumeBelowCpuPercent: 30,
      throttleAboveIoBytesPerSec: 100_000_000,
      resumeBelowIoBytesPerSec: 50_000_000,
      budgetCpuPercent: 150,
      throttledIoBytesPerSec: 0,
      budgetDwellMs: 60_000,
      maxPauseMs: 900_000,
      pauseWindowGuardMs: 0,
    });
  });

  it('refuses budget keys out of range or at odds, naming the key in the file', () => {
    const found = problems(() =>
      compileCoordinatorOptions(
        {
          host: 'h',
          plaintext: true,
          policy: { throttleAboveCpuPercent: 40, budgetCpuPercent: -5, maxPause: 'long', budgetDwell: '2h' },
        },
        'c.yaml',
      ),
    );
    assert.deepEqual(found, [
      'c.yaml: policy.budgetCpuPercent: expected a whole number >= 0, got -5',
      'c.yaml: policy.maxPause: expected a duration such as 500ms, 90s, 10m, 2h or 1h30m (a bare number is milliseconds), got "long"',
      'c.yaml: policy.throttleAboveCpuPercent: policy.resumeBelowCpuPercent (50) must be from 1 to below policy.throttleAboveCpuPercent (40)',
      'c.yaml: policy.budgetDwell: must be an integer from 0 to 3600000, got 7200000',
    ]);
  });

  it('reads the start policy: plan, host budget, start thresholds, hypervisor budget', () => {
    const o = compileCoordinatorOptions(
      {
        host: 'h',
        plaintext: true,
        policy: {
          followPlan: false,
          minStartGap: '30s',
          hostBudgetIoBytesPerSec: 400_000_000,
          startBelowCpuPercent: 70,
          hostStartBelowCpuPercent: 0,
          hypervisorBudgetCpuPercent: 200,
        },
      },
      'x',
    );
    assert.equal(o.policy.followPlan, false);
    assert.equal(o.policy.minStartGapMs, 30_000);
    assert.equal(o.policy.hostBudgetIoBytesPerSec, 400_000_000);
    assert.equal(o.policy.startBelowCpuPercent, 70);
    assert.equal(o.policy.hostStartBelowCpuPercent, 0);
    assert.equal(o.policy.hypervisorBudgetCpuPercent, 200);
    const vms = compileCoordinatorOptions(
      { host: 'h', plaintext: true, policy: { vmStartBelow: { 'db-1': { cpuPercent: 30 } } } },
      'x',
    );
    assert.deepEqual(vms.policy.vmStartBelow, { 'db-1': { cpuPercent: 30, ioBytesPerSec: 0 } });
    assert.deepEqual(
      problems(() =>
        compileCoordinatorOptions(
          { host: 'h', plaintext: true, policy: { vmStartBelow: { 'db-1': { cpuPercent: 300 } } } },
          'c.yaml',
        ),
      ),
      ['c.yaml: policy.vmStartBelow: db-1: cpu_percent must be an integer from 0 to 100, got 300'],
    );
    const pressure = (vmPressure: object) =>
      compileCoordinatorOptions({ host: 'h', plaintext: true, policy: { vmPressure } }, 'c.yaml');
    assert.deepEqual(
      pressure({
        'db-1': {
          throttleAboveCpuPressurePercent: 60,
          pauseAboveCpuPressurePercent: 80,
          throttleAboveDiskAwait: '30ms',
        },
      }).policy.vmPressure,
      {
        'db-1': { throttleAboveCpuPressurePercent: 60, pauseAboveCpuPressurePercent: 80, throttleAboveDiskAwaitMs: 30 },
      },
    );
    assert.deepEqual(
      problems(() => pressure({ 'db-1': { throttleAboveCpuPressurePercent: 60 } })),
      [
        "c.yaml: policy.vmPressure: db-1: throttleAboveCpuPressurePercent: the host's pauseAboveCpuPressurePercent (40) must be above throttleAboveCpuPressurePercent (60)",
      ],
    );
    assert.match(
      problems(() => pressure({ 'db-1': { maxGuestTokens: 2 } }))[0],
      /^c\.yaml: policy\.vmPressure\.db-1\.maxGuestTokens: unknown key/,
    );
    assert.deepEqual(
      problems(() =>
        compileCoordinatorOptions(
          { host: 'h', plaintext: true, policy: { followPlan: 'yes', startBelowCpuPercent: 120, minStartGap: 'soon' } },
          'c.yaml',
        ),
      ),
      [
        'c.yaml: policy.followPlan: expected true or false, got "yes"',
        'c.yaml: policy.minStartGap: expected a duration such as 500ms, 90s, 10m, 2h or 1h30m (a bare number is milliseconds), got "soon"',
        'c.yaml: policy.startBelowCpuPercent: must be an integer from 0 to 100, got 120',
      ],
    );
  });

  it("reads the host's own schedule of hypervisor jobs", () => {
    const o = compileCoordinatorOptions(
      {
        host: 'h',
        plaintext: true,
        hypervisorJobs: [
          {
            name: 'nightly-image',
            vms: ['web-1', 'db-1'],
            schedule: '30 1 * * *',
            window: '5h',
            expectedDuration: '20m',
            cost: { ioBytesPerSec: 200_000_000 },
          },
        ],
      },
      'x',
    );
    assert.deepEqual(o.hypervisorJobs, [
      {
        name: 'nightly-image',
        vms: ['web-1', 'db-1'],
        schedule: '30 1 * * *',
        windowMs: 5 * 3_600_000,
        expectedDurationMs: 20 * 60_000,
        priority: 0,
        declaredCost: { cpuPercent: 0, ioBytesPerSec: 200_000_000 },
      },
    ]);
    assert.deepEqual(compileCoordinatorOptions({ host: 'h', plaintext: true }, 'x').hypervisorJobs, []);
  });

  /** coordinator.yaml with `targets` and one hypervisor job writing to `sharedTarget`. */
  const withTargets = (targets: unknown[], sharedTarget: string) => ({
    host: 'h',
    plaintext: true,
    targets,
    hypervisorJobs: [
      { name: 'img', vms: ['web-1'], schedule: '30 1 * * *', window: '5h', expectedDuration: '20m', sharedTarget },
    ],
  });

  it('reads shared targets, their I/O budget as a byte rate, and a hypervisor job naming one', () => {
    const o = compileCoordinatorOptions(
      withTargets(
        [
          { name: 'pbs1', maxConcurrent: 3, ioBudget: '200MiB/s' },
          { name: 'nas', maxConcurrent: 1 },
        ],
        'pbs1',
      ),
      'x',
    );
    assert.deepEqual(o.targets, [
      { name: 'pbs1', maxConcurrent: 3, ioBytesPerSec: 200 * 1024 * 1024 },
      { name: 'nas', maxConcurrent: 1, ioBytesPerSec: 0 },
    ]);
    assert.equal(o.hypervisorJobs[0].target, 'pbs1');
    assert.deepEqual(compileCoordinatorOptions({ host: 'h', plaintext: true }, 'x').targets, []);
  });

  it('refuses malformed targets and a hypervisor job naming an unknown one, naming file and key', () => {
    const malformed = [
      { name: 'pbs1', maxConcurrent: 0, ioBudget: 'fast' },
      { name: 'pbs1', maxConcurrent: 2 },
    ];
    assert.deepEqual(
      problems(() => compileCoordinatorOptions(withTargets(malformed, 'pbs1'), 'c.yaml')),
      [
        'c.yaml: targets[0].maxConcurrent: expected an integer from 1 to 1000, got 0',
        'c.yaml: targets[0].ioBudget: expected bytes per second such as 500K, 10MiB or 1G (binary units), got "fast"',
        'c.yaml: targets[1].name: "pbs1" is used by another target',
      ],
    );
    assert.deepEqual(
      problems(() => compileCoordinatorOptions(withTargets([{ name: 'pbs1', maxConcurrent: 2 }], 'tape'), 'c.yaml')),
      ['c.yaml: hypervisorJobs[0].sharedTarget: no target "tape" in targets (pbs1)'],
    );
  });

  it('refuses a malformed hypervisor job, naming the entry and the key', () => {
    const found = problems(() =>
      compileCoordinatorOptions(
        {
          host: 'h',
          plaintext: true,
          hypervisorJobs: [
            { name: 'a', vms: [], schedule: '61 * * * *', window: '1h', expectedDuration: '0s', colour: 'red' },
            { name: 'b', vms: ['vm 1'], schedule: '0 2 * * *' },
            'nope',
          ],
        },
        'c.yaml',
      ),
    );
    assert.equal(found[0], 'c.yaml: hypervisorJobs[0].vms: expected a non-empty list of VM names, got []');
    assert.match(found[1], /^c\.yaml: hypervisorJobs\[0\]\.schedule: /);
    assert.match(found[2], /^c\.yaml: hypervisorJobs\[0\]\.expectedDuration: expected a duration/);
    assert.equal(
      found[3],
      'c.yaml: hypervisorJobs[0].colour: unknown key (expected one of: name, vms, schedule, window, expectedDuration, priority, cost, sharedTarget, driver, qmpSocket, libvirtUri, target, disks, maxIncrementals, speed, command, quiesce, retries, retryDelay)',
    );
    assert.equal(found[4], 'c.yaml: hypervisorJobs[1].vms: expected a non-empty list of VM names, got ["vm 1"]');
    assert.match(found[5], /^c\.yaml: hypervisorJobs\[1\]\.window: missing \(expected a duration/);
    assert.match(found[6], /^c\.yaml: hypervisorJobs\[1\]\.expectedDuration: missing \(expected a duration/);
    assert.match(found[7], /^c\.yaml: hypervisorJobs\[2\]: expected a mapping/);
    assert.equal(found.length, 8);
  });

  it('reads the backup directory and the drivers the coordinator runs hypervisor jobs with', () => {
    const job = { vms: ['vm1', 'vm2'], schedule: '0 2 * * *', window: '2h', expectedDuration: '10m' };
    const o = compileCoordinatorOptions(
      {
        host: 'h',
        plaintext: true,
        backups: { dir: '/srv/backups' },
        hypervisorJobs: [
          {
            name: 'nightly',
            ...job,
            driver: 'qmp',
            qmpSocket: '/run/qemu/{vm}.qmp',
            disks: 'disk0,disk1=drive-virtio1',
            speed: '50M',
            maxIncrementals: 6,
          },
          {
            name: 'vzdump',
            ...job,
            vms: ['vm3'],
            driver: 'command',
            command: ['vzdump', '{vm}', '--mode', 'snapshot'],
            quiesce: 'require',
            retries: 2,
            retryDelay: '15m',
          },
          { name: 'planned-only', ...job, vms: ['vm4'] },
        ],
      },
      'c.yaml',
    );
    assert.deepEqual(o.backups, { dir: '/srv/backups' });
    assert.deepEqual(o.hypervisorJobs[0].driver, {
      driver: 'qmp',
      qmpSocket: '/run/qemu/{vm}.qmp',
      target: undefined,
      disks: 'disk0,disk1=drive-virtio1',
      maxIncrementals: 6,
      speed: 50 * 1024 * 1024,
    });
    assert.deepEqual(o.hypervisorJobs[1].driver, {
      driver: 'command',
      command: ['vzdump', '{vm}', '--mode', 'snapshot'],
      quiesce: 'require',
      retries: 2,
      retryDelayMs: 15 * 60_000,
    });
    assert.equal(o.hypervisorJobs[2].driver, undefined);
    assert.equal(compileCoordinatorOptions({ host: 'h', plaintext: true }, 'x').backups, undefined);
  });

  it('refuses a malformed backup directory or driver, naming the key', () => {
    const job = { name: 'j', vms: ['vm1'], schedule: '0 2 * * *', window: '2h', expectedDuration: '10m' };
    const found = problems(() =>
      compileCoordinatorOptions(
        {
          host: 'h',
          plaintext: true,
          backups: { dir: 'relative/dir', keep: 3 },
          hypervisorJobs: [
            { ...job, driver: 'qmp' },
            { ...job, name: 'k', driver: 'ftp' },
            { ...job, name: 'l', driver: 'command', command: 'vzdump {vm}', qmpSocket: '/q' },
            { ...job, name: 'm', qmpSocket: '/q' },
            { ...job, name: 'n', driver: 'command', command: ['true'], quiesce: 'always' },
            { ...job, name: 'o', driver: 'command', command: ['true'], retries: 11, retryDelay: 'soon' },
            { ...job, name: 'p', retries: 1 },
            { ...job, name: 'q', driver: 'libvirt', libvirtUri: 'system', target: '/b', qmpSocket: '/q' },
          ],
        },
        'c.yaml',
      ),
    );
    assert.deepEqual(found, [
      'c.yaml: hypervisorJobs[0].qmpSocket: required with driver qmp: the QMP socket, {vm} standing for the VM (/run/qemu/{vm}.qmp)',
      'c.yaml: hypervisorJobs[1].driver: expected "qmp", "libvirt" or "command", got "ftp"',
      'c.yaml: hypervisorJobs[2].command: expected the command as a list of strings, such as [vzdump, "{vm}", --mode, snapshot] (a single string is not split by a shell: write it as a list), got "vzdump {vm}"',
      'c.yaml: hypervisorJobs[2].qmpSocket: does not go with driver command',
      'c.yaml: hypervisorJobs[3].qmpSocket: needs driver (qmp, libvirt or command)',
      'c.yaml: hypervisorJobs[4].quiesce: expected "require", "try" or "off", got "always"',
      'c.yaml: hypervisorJobs[5].retries: expected an integer from 0 to 10, got 11',
      'c.yaml: hypervisorJobs[5].retryDelay: expected a duration such as 500ms, 90s, 10m, 2h or 1h30m (a bare number is milliseconds), got "soon"',
      'c.yaml: hypervisorJobs[6].retries: needs driver (qmp, libvirt or command)',
      'c.yaml: hypervisorJobs[7].libvirtUri: expected a libvirt URI such as qemu:///system, got "system"',
      'c.yaml: hypervisorJobs[7].qmpSocket: does not go with driver libvirt',
      'c.yaml: backups.dir: expected the absolute path of the backup directory, got "relative/dir"',
      'c.yaml: backups.keep: unknown key (expected one of: dir)',
    ]);
    const noTarget = problems(() =>
      compileCoordinatorOptions(
        { host: 'h', plaintext: true, hypervisorJobs: [{ ...job, driver: 'qmp', qmpSocket: '/run/{vm}.qmp' }] },
        'c.yaml',
      ),
    );
    assert.deepEqual(noTarget, [
      'c.yaml: hypervisorJobs[0].target: required with driver qmp unless backups.dir is set',
    ]);
    const libvirtNoTarget = problems(() =>
      compileCoordinatorOptions(
        { host: 'h', plaintext: true, hypervisorJobs: [{ ...job, driver: 'libvirt' }] },
        'c.yaml',
      ),
    );
    assert.deepEqual(libvirtNoTarget, [
      'c.yaml: hypervisorJobs[0].target: required with driver libvirt unless backups.dir is set',
    ]);
  });

  it('names the file and line of a YAML syntax error', () => {
    const file = path.join(tempDir(), 'bad.yaml');
    fs.writeFileSync(file, 'listen: [oops\n');
    const found = problems(() => loadConfigFile(file));
    assert.match(found[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:1: `));
  });

  it('reads the placement source: a static list, libvirt with its default URI, the Proxmox directory', () => {
    const base = { host: 'h', plaintext: true };
    const U = '8C3F1A2B-5D6E-4F70-8192-A3B4C5D6E7F8';
    assert.deepEqual(
      compileCoordinatorOptions({ ...base, placement: { static: [{ name: 'web1', uuid: U, vmid: 101 }] } }, 'c.yaml')
        .placement,
      { static: [{ name: 'web1', uuid: U.toLowerCase(), vmid: '101' }] },
    );
    assert.deepEqual(compileCoordinatorOptions({ ...base, placement: { libvirt: {} } }, 'c.yaml').placement, {
      libvirt: { uri: 'qemu:///system' },
    });
    assert.deepEqual(compileCoordinatorOptions({ ...base, placement: { proxmox: {} } }, 'c.yaml').placement, {
      proxmox: { dir: '/etc/pve', pollIntervalMs: 10_000 },
    });
    assert.equal(compileCoordinatorOptions(base, 'c.yaml').placement, undefined);
  });

  it('refuses a malformed placement, naming the key', () => {
    const U = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
    const U2 = '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9';
    const found = problems(() =>
      compileCoordinatorOptions(
        {
          host: 'h',
          plaintext: true,
          placement: {
            static: [
              { name: 'web1', uuid: 'not-a-uuid' },
              { name: 'db1', uuid: U, vmid: '7' },
              { name: 'db1', uuid: U.toUpperCase() },
              { name: 'app', uuid: U2, vmid: 'x1' },
              { name: 'web2', uuid: U2, vmid: '7' },
            ],
            proxmox: { dir: 'etc/pve' },
          },
        },
        'c.yaml',
      ),
    );
    assert.deepEqual(found, [
      'c.yaml: placement.static[0].uuid: expected a UUID, got "not-a-uuid"',
      'c.yaml: placement.static[3].vmid: expected a Proxmox VMID (digits), got "x1"',
      'c.yaml: placement.static[2].uuid: 8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8 is listed twice',
      'c.yaml: placement.static[4].vmid: "7" already names 8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8: each name and VMID names one VM',
      'c.yaml: placement.proxmox.dir: expected the absolute path of the Proxmox config directory, got "etc/pve"',
      'c.yaml: placement.proxmox: give one source of libvirt, static or proxmox, not static and proxmox',
    ]);
  });

  it('reads the HTTP listener and the history retention, with their defaults', () => {
    const o = compileCoordinatorOptions({ host: 'h', plaintext: true }, 'c.yaml');
    assert.equal(o.http, undefined, 'the HTTP listener is off unless asked for');
    assert.deepEqual(o.history, { keepDays: 30, maxRows: 1_000_000 });
    const given = compileCoordinatorOptions(
      { host: 'h', plaintext: true, http: { listen: '127.0.0.1:9470' }, history: { keepDays: 7 } },
      'c.yaml',
    );
    assert.deepEqual(given.http, { listen: '127.0.0.1:9470', maxEventStreams: 64 });
    assert.deepEqual(given.history, { keepDays: 7, maxRows: 1_000_000 });
  });

  it('refuses an HTTP listener off loopback without TLS, or without client certificates unless allowAnonymous, and bad retention', () => {
    const dir = tempDir();
    const pem = path.join(dir, 'x.pem');
    fs.writeFileSync(pem, 'x');
    const tls = { certFile: pem, keyFile: pem, allowAnonymous: true };
    assert.deepEqual(
      problems(() =>
        compileCoordinatorOptions(
          {
            host: 'h',
            plaintext: true,
            http: { listen: '0.0.0.0:9470', colour: 1, maxEventStreams: 0 },
            history: { keepDays: 0, maxRows: 'many' },
          },
          'c.yaml',
        ),
      ),
      [
        'c.yaml: http.maxEventStreams: expected an integer from 1 to 10000, got 0',
        'c.yaml: http.colour: unknown key (expected one of: listen, allowAnonymous, maxEventStreams)',
        'c.yaml: history.keepDays: expected an integer from 1 to 36500, got 0',
        'c.yaml: history.maxRows: expected an integer from 1000 to 1000000000, got "many"',
      ],
    );
    assert.deepEqual(
      problems(() =>
        compileCoordinatorOptions({ host: 'h', plaintext: true, http: { listen: '0.0.0.0:9470' } }, 'c.yaml'),
      ),
      [
        'c.yaml: http.listen: 0.0.0.0:9470 is not a loopback address, so HTTPS is required: give pki.dir (or tls), or listen on 127.0.0.1',
      ],
    );
    assert.deepEqual(
      problems(() =>
        compileCoordinatorOptions(
          { host: 'h', listen: '10.0.0.1:7400', tls, http: { listen: '10.0.0.1:9470' } },
          'c.yaml',
        ),
      ),
      [
        'c.yaml: http.allowAnonymous: missing: 10.0.0.1:9470 is not a loopback address and tls has no clientCaFile to check callers with; give tls.clientCaFile, or http.allowAnonymous: true to let every host that reaches it read the metrics',
      ],
    );
    const anonymous = { listen: '10.0.0.1:9470', allowAnonymous: true };
    assert.deepEqual(
      compileCoordinatorOptions({ host: 'h', listen: '10.0.0.1:7400', tls, http: anonymous }, 'c.yaml').http,
      { ...anonymous, maxEventStreams: 64 },
    );
  });
});

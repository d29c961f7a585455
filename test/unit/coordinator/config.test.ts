import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, compileCoordinatorOptions, loadConfigFile } from '../../../coordinator/config';
import { DEFAULT_POLICY } from '../../../coordinator/domain/policy';
import { tempDir } from '../../helpers/coordinator-process';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('coordinator configuration', () => {
  it('applies defaults: loopback address, full durability, the default policy', () => {
    const o = compileCoordinatorOptions({ host: 'pve-1' }, 'test.yaml');
    assert.equal(o.listen, '127.0.0.1:7400');
    assert.equal(o.durability, 'full');
    assert.deepEqual(o.policy, DEFAULT_POLICY);
  });

  it('reads durations and policy keys with units', () => {
    const o = compileCoordinatorOptions({ host: 'h', policy: { leaseTtl: '1m', reportInterval: 5000, maxGuestTokens: 2 } }, 'x');
    assert.equal(o.policy.leaseTtlMs, 60_000);
    assert.equal(o.policy.reportIntervalMs, 5000);
    assert.equal(o.policy.maxGuestTokens, 2);
  });

  it('collects every problem, each naming the file and the key', () => {
    const found = problems(() =>
      compileCoordinatorOptions(
        { listen: '10.1.2.3:7400', durability: 'fast', colour: 'blue', policy: { leaseTtl: 'soon', maxGuestTokens: 0 } },
        '/etc/headroom/coordinator.yaml',
      ),
    );
    assert.equal(found.length, 5, found.join('\n'));
    for (const key of ['colour', 'durability', 'listen', 'policy.leaseTtl', 'policy.maxGuestTokens']) {
      assert.ok(found.some((p) => p.startsWith(`/etc/headroom/coordinator.yaml: ${key}: `)), `${key} in ${found.join('\n')}`);
    }
    assert.ok(found.some((p) => /not a loopback address, so pki.dir \(or tls.certFile and tls.keyFile\) is required/.test(p)));
  });

  it('takes pki.dir (the coordinator\'s own CA) for a non-loopback address, alone and made by pki init', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'ca.pem'), 'x');
    const o = compileCoordinatorOptions({ host: 'h', listen: '10.1.2.3:7400', pki: { dir } }, 'c.yaml');
    assert.deepEqual(o.pki, { dir });
    const empty = tempDir();
    const found = problems(() =>
      compileCoordinatorOptions({ host: 'h', pki: { dir: empty, colour: 1 }, tls: { certFile: path.join(dir, 'ca.pem'), keyFile: path.join(dir, 'ca.pem') } }, 'c.yaml'),
    );
    assert.deepEqual(found.map((p) => p.split(': ')[1]).sort(), ['pki', 'pki.colour', 'pki.dir']);
    assert.ok(found.some((p) => p.includes(`${empty} holds no CA (ca.pem): run headroomctl pki init --dir ${empty} first`)), found.join('\n'));
    assert.ok(found.some((p) => /give pki .* or tls .*, not both/.test(p)), found.join('\n'));
  });

  it('reads the budget controller\'s thresholds, budgets and durations', () => {
    const o = compileCoordinatorOptions(
      {
        host: 'h',
        policy: {
          throttleAboveCpuPercent: 40, pauseAboveCpuPercent: 70, resumeBelowCpuPercent: 30,
          throttleAboveIoBytesPerSec: 100_000_000, resumeBelowIoBytesPerSec: 50_000_000,
          budgetCpuPercent: 150, throttledIoBytesPerSec: 0, budgetDwell: '1m', maxPause: '15m', pauseWindowGuard: 0,
        },
      },
      'x',
    );
    assert.deepEqual(o.policy, {
      ...DEFAULT_POLICY,
      throttleAboveCpuPercent: 40, pauseAboveCpuPercent: 70, resumeBelowCpuPercent: 30,
      throttleAboveIoBytesPerSec: 100_000_000, resumeBelowIoBytesPerSec: 50_000_000,
      budgetCpuPercent: 150, throttledIoBytesPerSec: 0, budgetDwellMs: 60_000, maxPauseMs: 900_000, pauseWindowGuardMs: 0,
    });
  });

  it('refuses budget keys out of range or at odds, naming the key in the file', () => {
    const found = problems(() =>
      compileCoordinatorOptions(
        { host: 'h', policy: { throttleAboveCpuPercent: 40, budgetCpuPercent: -5, maxPause: 'long', budgetDwell: '2h' } },
        'c.yaml',
      ),
    );
    assert.deepEqual(found, [
      'c.yaml: policy.budgetCpuPercent: expected a whole number >= 0',
      'c.yaml: policy.maxPause: expected a duration such as 500ms, 90s, 10m, 2h or 1h30m (a bare number is milliseconds)',
      'c.yaml: policy.throttleAboveCpuPercent: policy.resumeBelowCpuPercent (50) must be from 1 to below policy.throttleAboveCpuPercent (40)',
      'c.yaml: policy.budgetDwell: must be an integer from 0 to 3600000, got 7200000',
    ]);
  });

  it('names the file and line of a YAML syntax error', () => {
    const file = path.join(tempDir(), 'bad.yaml');
    fs.writeFileSync(file, 'listen: [oops\n');
    const found = problems(() => loadConfigFile(file));
    assert.match(found[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
  });
});

/**
 * The real load collector on this machine, in a fresh Node process whose child_process is patched before
 * systeminformation loads (it keeps its own references to exec and execSync): sampling must start no
 * process at all.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { DIST } from '../../../helpers/coordinator-process';

const PROBE = `
const cp = require('node:child_process');
const calls = [];
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  const original = cp[name];
  cp[name] = function (...args) { calls.push(name + ' ' + String(args[0]).slice(0, 60)); return original.apply(this, args); };
}
const realSpawn = cp.ChildProcess.prototype.spawn;
cp.ChildProcess.prototype.spawn = function (options) { calls.push('ChildProcess.spawn ' + options.file); return realSpawn.call(this, options); };
const { SystemLoadCollector } = require(${JSON.stringify(path.join(DIST, 'common', 'backup-run', 'load-collector.js'))});
const { systemClock } = require(${JSON.stringify(path.join(DIST, 'common', 'util', 'clock.js'))});
(async () => {
  const c = new SystemLoadCollector({ clock: systemClock });
  c.prime();
  let x = 0; const until = Date.now() + 300; while (Date.now() < until) x += Math.sqrt(x + 1); // some CPU to measure
  const report = await c.sample();
  process.stdout.write(JSON.stringify({ calls, report }));
})();
`;

describe('load collector on the real system', () => {
  it('samples CPU, memory, disk and network without starting any process', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['-e', PROBE], { encoding: 'utf8' })) as {
      calls: string[];
      report: Record<string, number>;
    };
    assert.deepEqual(out.calls, []);
    const r = out.report;
    assert.ok(r.memTotalBytes > 0 && r.memUsedBytes > 0 && r.memUsedBytes <= r.memTotalBytes, JSON.stringify(r));
    assert.ok(r.cpuPercent > 0 && r.cpuPercent <= 100, `busy for 300 ms, cpu ${r.cpuPercent} %`);
    for (const k of [
      'diskReadBytesPerSec',
      'diskWriteBytesPerSec',
      'netRxBytesPerSec',
      'netTxBytesPerSec',
      'load1',
      'load5',
      'load15',
    ]) {
      assert.ok(Number.isFinite(r[k]) && r[k] >= 0, `${k}: ${r[k]}`);
    }
    assert.ok(Math.abs(r.sampledUnixMs - Date.now()) < 60_000);
  });
});

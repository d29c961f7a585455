/**
 * The coordinator's configuration as an administrator meets it, with the real executable: a database
 * whose directory is missing (issue 15, point 4), and policy keys changed in coordinator.yaml between two
 * starts on the same database (point 9).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_CONFIG } from '../../../common/util/exit-codes';
import { COORDINATOR_MAIN, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { runCtl } from '../ctl/ctl-process';

describe('coordinator configuration', function () {
  this.timeout(30_000);

  it('refuses a database in a directory that does not exist, naming the path and the key, exit 78', () => {
    const dir = path.join(tempDir(), 'missing');
    const config = path.join(tempDir(), 'coordinator.yaml');
    fs.writeFileSync(config, `database: ${dir}/headroom.db\nplaintext: true\n`);
    const r = spawnSync(process.execPath, [COORDINATOR_MAIN, '--config', config, '--listen', '127.0.0.1:0'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, EXIT_CONFIG, r.stderr);
    assert.equal(
      r.stderr,
      `headroom-coordinator: invalid configuration:\n  ${config}: database: the directory ${dir} of ${dir}/headroom.db does not exist: create it (mode 0700, owned by the user the coordinator runs as) or give another path\n`,
    );
    assert.equal(fs.existsSync(dir), false);

    // Given by --db, over the file: the command line is named, with the flag.
    const flag = spawnSync(
      process.execPath,
      [COORDINATOR_MAIN, '--config', config, '--db', `${dir}/other.db`, '--listen', '127.0.0.1:0'],
      { encoding: 'utf8' },
    );
    assert.equal(flag.status, EXIT_CONFIG, flag.stderr);
    assert.match(
      flag.stderr,
      new RegExp(`^  command line: --db: the directory ${dir} of ${dir}/other\\.db does not exist`, 'm'),
    );
  });

  it('applies the policy keys the file sets at a restart, one log line per changed key, and keeps the others', async () => {
    const config = path.join(tempDir(), 'coordinator.yaml');
    const dbPath = path.join(tempDir(), 'headroom.db');
    const policyFile = (maxGuest: number) =>
      fs.writeFileSync(config, `policy:\n  maxGuestTokens: ${maxGuest}\n  minStartGap: 0\n`);
    const status = async (address: string) => {
      const r = await runCtl(['--coordinator', address, 'status', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).hosts[0].policy;
    };

    policyFile(4);
    let coordinator = await startCoordinator({ dbPath, args: ['--config', config] });
    try {
      // Changed by hand: a key the file leaves out keeps this across the restart.
      const set = await runCtl(['--coordinator', coordinator.address, 'policy', 'set', '--max-hypervisor', '2']);
      assert.equal(set.code, 0, set.stderr);
    } finally {
      await coordinator.stop();
    }

    policyFile(2);
    coordinator = await startCoordinator({ dbPath, args: ['--config', config] });
    try {
      const policy = await status(coordinator.address);
      assert.equal(policy.maxGuestTokens, 2);
      assert.equal(policy.maxHypervisorTokens, 2);
      const changed = coordinator
        .log()
        .split('\n')
        .filter((l) => l.includes('policy key changed'));
      assert.equal(changed.length, 1, coordinator.log());
      assert.match(changed[0], /policy key changed by the configuration host=host-a key=maxGuestTokens from=4 to=2/);
    } finally {
      await coordinator.stop();
    }
  });
});

/**
 * The token a command runs under reaches it in its environment (common/backup-run/token-env.ts), through the real
 * `headroom-agent exec` and `headroomctl host-backup` against a real coordinator: a command that prints
 * its environment to a file.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unary } from '../../common/client/connection';
import { CTL_MAIN, tempDir } from '../helpers/coordinator-process';
import { coordinatorSuite } from '../helpers/coordinator-suite';
import { startAgent } from './agent/processes';

/** A command that writes the HEADROOM_ variables of its environment to `file`. */
const printEnv = (file: string) => ['sh', '-c', 'env | grep ^HEADROOM_ > "$0"', file];

function readEnv(file: string): Record<string, string> {
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('the token in the command environment (real agent, headroomctl and coordinator)', function () {
  const suite = coordinatorSuite({ host: 'host-env' });

  async function granted(job: string) {
    const history = await unary(suite.clients.admin.ListHistory.bind(suite.clients.admin), { host: 'host-env' });
    const event = history.events.find((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED' && e.job === job);
    assert.ok(event, `a grant for ${job} in the history`);
    return event;
  }

  it('gives the command of headroom-agent exec its GUEST token, slot end and window end', async () => {
    const file = path.join(tempDir(), 'env');
    const before = Date.now();
    const agent = startAgent([
      'exec',
      '--coordinator',
      suite.coordinator.address,
      '--vm',
      'vm-env',
      '--host',
      'host-env',
      '--job',
      'env-guest',
      '--window',
      '1h',
      '--expected-duration',
      '10m',
      '--',
      ...printEnv(file),
    ]);
    assert.equal(await agent.exited, 0, agent.stderr());
    const after = Date.now();
    const env = readEnv(file);
    const grant = await granted('env-guest');
    assert.deepEqual(
      [
        env.HEADROOM_TOKEN_ID,
        env.HEADROOM_FENCING,
        env.HEADROOM_KIND,
        env.HEADROOM_HOST,
        env.HEADROOM_VM,
        env.HEADROOM_JOB,
      ],
      [grant.tokenId, String(grant.fencing), 'GUEST', 'host-env', 'vm-env', 'env-guest'],
    );
    const slotEnd = Number(env.HEADROOM_SLOT_END_UNIX_MS);
    const windowEnd = Number(env.HEADROOM_WINDOW_END_UNIX_MS);
    assert.ok(slotEnd >= before + 600_000 && slotEnd <= after + 600_000, `slot end ${slotEnd} is start + 10m`);
    assert.ok(windowEnd >= before + 3_600_000 && windowEnd <= after + 3_600_000, `window end ${windowEnd} is now + 1h`);
  });

  it('gives the command of headroomctl host-backup its HYPERVISOR token, with a higher fencing number and no window', async () => {
    const file = path.join(tempDir(), 'env');
    const hv = spawn(
      process.execPath,
      [
        CTL_MAIN,
        '--coordinator',
        suite.coordinator.address,
        'host-backup',
        '--host',
        'host-env',
        '--vm',
        'vm-hv',
        '--job',
        'env-hv',
        '--',
        ...printEnv(file),
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        // A token variable inherited from whoever started headroomctl must not reach the command.
        env: { ...process.env, HEADROOM_FENCING: '999999', HEADROOM_WINDOW_END_UNIX_MS: '1' },
      },
    );
    let stderr = '';
    hv.stderr.on('data', (d) => (stderr += d));
    assert.equal(await new Promise((resolve) => hv.once('exit', resolve)), 0, stderr);
    const env = readEnv(file);
    const grant = await granted('env-hv');
    const guest = await granted('env-guest');
    assert.deepEqual(
      [env.HEADROOM_TOKEN_ID, env.HEADROOM_FENCING, env.HEADROOM_KIND, env.HEADROOM_VM],
      [grant.tokenId, String(grant.fencing), 'HYPERVISOR', 'vm-hv'],
    );
    assert.ok(Number(env.HEADROOM_FENCING) > guest.fencing, 'fencing grows per host');
    assert.equal(env.HEADROOM_WINDOW_END_UNIX_MS, '0');
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { v1 } from '../../../../proto';
import { systemClock } from '../../../../common/util/clock';
import { createLogger } from '../../../../common/util/log';
import { startControlEndpoint } from '../../../../agent/freeze/control-endpoint';
import { controlRequest } from '../../../../agent/freeze/control-socket';
import { FreezeState } from '../../../../agent/freeze/freeze-state';

describe('agent control endpoint', () => {
  const log = createLogger({ level: 'error' });
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-endpoint-'));
  });

  function start(up: boolean) {
    const freeze = new FreezeState(systemClock, log);
    const reported: v1.FreezeNotice[] = [];
    const controlSocket = path.join(dir, 'agent.sock');
    const endpoint = startControlEndpoint({
      config: { file: 'agent.yaml', controlSocket },
      log,
      freeze,
      report: (n) => (reported.push(n), up),
    });
    const ask = (frozen: boolean, source = 'qemu-guest-agent', holdMs = 0) =>
      controlRequest(controlSocket, { freezeNotice: { frozen, source, holdMs } }, 2_000);
    return { freeze, reported, endpoint, ask };
  }

  it('takes a freeze and a thaw, tells the coordinator, and says whether it could', async () => {
    const up = start(true);
    await up.endpoint.ready;
    assert.deepEqual(await up.ask(true, 'qemu-guest-agent', 5_000), {
      ok: true,
      message: 'freeze by qemu-guest-agent noted (guest backups held for 5s at most); coordinator told',
    });
    assert.equal(up.freeze.frozen, true);
    assert.deepEqual(await up.ask(false), { ok: true, message: 'thaw by qemu-guest-agent noted; coordinator told' });
    assert.equal(up.freeze.frozen, false);
    assert.deepEqual(up.reported, [
      { frozen: true, source: 'qemu-guest-agent', holdMs: 5_000 },
      { frozen: false, source: 'qemu-guest-agent', holdMs: 0 },
    ]);
    await up.endpoint.close();

    const down = start(false);
    await down.endpoint.ready;
    assert.match((await down.ask(true)).message, /the coordinator is not reachable now: it is told on reconnect$/);
    down.freeze.end();
    await down.endpoint.close();
  });

  it('refuses what the coordinator would refuse (and end the session for), telling nobody', async () => {
    const e = start(true);
    await e.endpoint.ready;
    assert.deepEqual(await e.ask(true, 'two words'), {
      ok: false,
      message: 'freezeNotice.source: expected a name (letters, digits and . _ : @ -, at most 128), got "two words"',
    });
    assert.deepEqual(await e.ask(true, 'qemu-guest-agent', 3_600_001), {
      ok: false,
      message: 'freezeNotice.holdMs: at most 3600000, got 3600001',
    });
    assert.deepEqual(e.reported, []);
    assert.equal(e.freeze.frozen, false);
    await e.endpoint.close();
  });

  it('fails, naming the file and key, when the configured socket cannot be set up', async () => {
    const controlSocket = path.join(dir, 'missing', 'agent.sock');
    const endpoint = startControlEndpoint({
      config: { file: '/etc/headroom/agent.yaml', controlSocket },
      log,
      freeze: new FreezeState(systemClock, log),
      report: () => true,
    });
    await assert.rejects(endpoint.ready, (err: Error) =>
      err.message.startsWith(`/etc/headroom/agent.yaml: controlSocket: cannot listen on ${controlSocket}: E`),
    );
    await endpoint.close();
  });
});

/**
 * examples/python-client against a real coordinator: Python modules generated from proto/headroom/v1 by the
 * example's generate.sh take a token and give it back, and the coordinator's history shows both. It needs
 * Debian's protobuf-compiler, python3-grpc-tools and python3-grpcio; without them generate.sh fails, naming them.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { unary } from '../../../common/client/connection';
import { DIST, tempDir } from '../../helpers/coordinator-process';
import { coordinatorSuite } from '../../helpers/coordinator-suite';

const run = promisify(execFile);
const EXAMPLE = path.join(path.dirname(DIST), 'examples', 'python-client');
// Debian's python3, where python3-grpcio lives, whatever python3 comes first on PATH.
const PYTHON = '/usr/bin/python3';

describe('the Python client example', function () {
  this.timeout(120_000);
  const suite = coordinatorSuite({ host: 'host-py' });

  it('is generated from the .proto files, and acquires and releases a token', async () => {
    const out = tempDir('headroom-python-');
    await run(path.join(EXAMPLE, 'generate.sh'), [out], { env: { ...process.env, PYTHON } });
    const client = [
      path.join(EXAMPLE, 'client.py'),
      '--coordinator',
      suite.coordinator.address,
      '--vm',
      'vm-py',
      '--job',
      'example',
    ];
    const { stdout } = await run(PYTHON, client, { env: { ...process.env, PYTHONPATH: out } });

    const tokenId = /^granted TOKEN_KIND_GUEST token (\S+) \(fencing 1\) on host-py for vm-py\/example$/m.exec(
      stdout,
    )?.[1];
    assert.ok(tokenId, stdout);
    assert.match(stdout, new RegExp(`^released token ${tokenId}$`, 'm'));
    const { events } = await unary(suite.clients.admin.ListHistory.bind(suite.clients.admin), {
      host: 'host-py',
      vm: 'vm-py',
      limit: 10,
    });
    assert.deepEqual(
      events.map((e) => [e.type, e.tokenId]),
      [
        ['HISTORY_EVENT_TYPE_GRANTED', tokenId],
        ['HISTORY_EVENT_TYPE_RELEASED', tokenId],
      ],
    );
    assert.match(events[1].detail, /^success, .*: python client example$/);
  });
});

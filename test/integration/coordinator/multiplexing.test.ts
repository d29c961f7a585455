/**
 * Many calls at once on one channel: 200 acquire/release cycles on a host that grants a few tokens at a
 * time (what an etcd-style client does), and more calls than a connection may have streams, which the
 * client queues because the coordinator advertises its limit in HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS.
 */
import { strict as assert } from 'node:assert';
import { MAX_STREAMS_PER_CONNECTION } from '../../../coordinator/rpc/limits';
import { unary } from '../../../common/client/connection';
import { coordinatorSuite } from '../../helpers/coordinator-suite';
import { grant, release } from '../../helpers/token-client';

const CYCLES = 200;
/** More than a connection may carry at once: the client must queue some. */
const CALLS = MAX_STREAMS_PER_CONNECTION + CYCLES;

describe('coordinator: a client that multiplexes many calls on one channel', function () {
  this.timeout(60_000);
  const suite = coordinatorSuite({ host: 'host-a', args: ['--max-guest', String(CALLS)] });

  it(`completes ${CALLS} concurrent acquire/release cycles on one channel, more than the ${MAX_STREAMS_PER_CONNECTION} streams a connection may have`, async () => {
    const results = await Promise.allSettled(
      Array.from({ length: CALLS }, async (_, i) => {
        const token = await grant(suite.clients, { vm: `vm-mux-${i}`, job: 'mux' });
        await release(suite.clients, token);
      }),
    );
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    assert.deepEqual(failed, []);
  });

  it(`completes ${CYCLES} concurrent acquire/release cycles on one channel when the host grants 4 tokens at a time`, async () => {
    await grant(suite.clients, { vm: 'vm-contended-setup', host: 'host-contended' }).then((t) =>
      release(suite.clients, t),
    );
    await unary(suite.clients.admin.SetPolicy.bind(suite.clients.admin), { host: 'host-contended', maxGuestTokens: 4 });
    const results = await Promise.allSettled(
      Array.from({ length: CYCLES }, async (_, i) => {
        const token = await grant(suite.clients, { vm: `vm-contended-${i}`, job: 'mux', host: 'host-contended' });
        await release(suite.clients, token);
      }),
    );
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    assert.deepEqual(failed, []);
  });
});

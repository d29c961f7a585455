import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { createLogger } from '../../../../common/util/log';
import { keepPublished } from '../../../../coordinator/cluster/member-keys';

/** A registration whose puts the test answers one by one, in the order they were made. */
function registration() {
  const puts: { key: string; value: string; answer(error?: Error): void }[] = [];
  const registered: (() => void)[] = [];
  return {
    puts,
    reregister: () => registered.forEach((l) => l()),
    put: (key: string, value: string) =>
      new Promise<void>((resolve, reject) =>
        puts.push({ key, value, answer: (error) => (error ? reject(error) : resolve()) }),
      ),
    onRegistered: (l: () => void) => void registered.push(l),
  };
}

const log = createLogger({ level: 'silent' });

describe('keepPublished (a member key under its registration lease)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers()));
  afterEach(() => clock.restore());

  it('puts one value of a key at a time, then the newest, so an older value never lands after a newer one', async () => {
    const r = registration();
    const published = keepPublished(r, 'runs', log);
    const landed: string[] = [];
    for (const v of ['v1', 'v2', 'v3']) void published.publish('k', v).then(() => landed.push(v));
    assert.deepEqual(
      r.puts.map((p) => p.value),
      ['v1'],
    );
    r.puts[0].answer();
    await clock.tickAsync(0);
    assert.deepEqual(
      r.puts.map((p) => p.value),
      ['v1', 'v3'],
    );
    assert.deepEqual(landed, ['v1'], 'each publication resolves once it, or a newer one, is in etcd');
    r.puts[1].answer();
    await clock.tickAsync(0);
    assert.deepEqual(landed, ['v1', 'v2', 'v3']);
  });

  it('puts again after a failure, and again whenever the member registers with a new lease', async () => {
    const r = registration();
    const published = keepPublished(r, 'jobs', log);
    void published.publish('k', 'v1');
    r.puts[0].answer(new Error('etcd out of reach'));
    await clock.tickAsync(0);
    assert.equal(r.puts.length, 1, 'not at once');
    await clock.tickAsync(1_000);
    assert.deepEqual(
      r.puts.map((p) => p.value),
      ['v1', 'v1'],
    );
    r.puts[1].answer();
    await clock.tickAsync(5_000);
    assert.equal(r.puts.length, 2, 'not once it is in');
    r.reregister();
    assert.deepEqual(
      r.puts.map((p) => p.value),
      ['v1', 'v1', 'v1'],
    );
    published.stop();
    r.puts[2].answer(new Error('stopped meanwhile'));
    await clock.tickAsync(5_000);
    assert.equal(r.puts.length, 3, 'nothing after stop');
  });
});

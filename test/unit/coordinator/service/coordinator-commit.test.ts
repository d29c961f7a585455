/**
 * "Committed before acknowledged" at the coordinator's edge: answers that rest on a commit still in flight
 * (a retried acquire of a request whose grant is being committed) wait for it and fail with it, and a
 * halted cluster leader does not renew tokens in memory. Over a real SQLite file whose commits the test
 * holds and fails.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as sinon from 'sinon';
import { ManualClock } from '../../../../common/util/clock';
import { createLogger } from '../../../../common/util/log';
import { StoreUnavailableError } from '../../../../coordinator/domain/errors';
import type { Lease } from '../../../../coordinator/domain/lease';
import { Coordinator, type Waiter } from '../../../../coordinator/service/coordinator';
import { SqliteStore } from '../../../../coordinator/store/sqlite-store';
import { T0, counterIds, req } from '../domain/fixtures';

/** A store whose commits wait while `held` and throw while `failing`. */
async function setup(afterFailedCommit: 'reload' | 'halt') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-commit-'));
  const store = new SqliteStore(path.join(dir, 'h.db'), 'normal');
  const control = { held: undefined as Promise<void> | undefined, failing: false };
  const commit = store.commit.bind(store);
  sinon.stub(store, 'commit').callsFake(async (events) => {
    await control.held;
    if (control.failing) throw new Error('etcd: the leader guard failed');
    return commit(events);
  });
  const coordinator = await Coordinator.open({
    store,
    clock: new ManualClock(T0),
    ids: counterIds(),
    log: createLogger({ level: 'silent' }),
    defaultHost: 'h1',
    afterFailedCommit,
  });
  const told: string[] = [];
  const acquire = (name: string) => {
    const waiter: Waiter = {
      queued: () => told.push(`${name} queued`),
      granted: (lease: Lease) => told.push(`${name} granted ${lease.tokenId}`),
      denied: (reason) => told.push(`${name} denied ${reason}`),
      failed: () => told.push(`${name} failed`),
    };
    return coordinator.acquire(req({ requestId: 'r1', kind: 'GUEST', vm: 'vm1', host: 'h1' }), waiter);
  };
  let open: () => void = () => {};
  const hold = () => {
    control.held = new Promise((resolve) => (open = resolve));
  };
  const cleanup = async () => {
    open();
    await coordinator.stop().catch(() => undefined);
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { coordinator, control, told, acquire, hold, open: () => open(), cleanup };
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('Coordinator: committed before acknowledged', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it('tells a retried acquire GRANTED only once the grant it repeats is committed', async () => {
    const s = await setup('halt');
    cleanup = s.cleanup;
    s.hold();
    const first = s.acquire('first');
    await turns(3); // its commit is in flight now
    const retry = s.acquire('retry');
    await turns(3);
    assert.deepEqual(s.told, [], 'nothing is told while the grant is not durable');
    s.open();
    await Promise.all([first, retry]);
    assert.deepEqual(s.told.sort(), ['first granted tok-1', 'retry granted tok-1']);
  });

  it('fails the retried acquire with the commit it waited for, and tells no one GRANTED', async () => {
    const s = await setup('halt');
    cleanup = s.cleanup;
    s.hold();
    const first = s.acquire('first');
    await turns(3);
    const retry = s.acquire('retry');
    s.control.failing = true;
    s.open();
    await assert.rejects(first, StoreUnavailableError);
    await assert.rejects(retry, StoreUnavailableError);
    assert.deepEqual(
      s.told.filter((t) => t.includes('granted')),
      [],
    );
  });

  it('renews in memory when the single host’s database cannot be written, but not on a halted cluster leader', async () => {
    for (const mode of ['reload', 'halt'] as const) {
      const s = await setup(mode);
      cleanup = s.cleanup;
      await s.acquire('holder');
      const [, token] = s.told[0].split(' granted ');
      s.control.failing = true;
      const renewal = s.coordinator.renew(token, 1);
      if (mode === 'reload') assert.equal((await renewal).tokenId, token);
      else await assert.rejects(renewal, StoreUnavailableError);
      await s.cleanup();
      cleanup = undefined;
    }
  });
});

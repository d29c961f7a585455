import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { Lease } from '../../../../coordinator/domain/lease';
import type { Lessor } from '../../../../coordinator/domain/lessor';
import { type TargetLimits, targetIoBudget } from '../../../../coordinator/domain/targets';
import { newLessor, req } from './fixtures';

const MIB = 1024 * 1024;
const OK = { success: true, durationMs: 5, exitCode: 0, message: '' };
const PBS: TargetLimits = { name: 'pbs', maxConcurrent: 2, ioBytesPerSec: 0 };
const NAS: TargetLimits = { name: 'nas', maxConcurrent: 4, ioBytesPerSec: 120 * MIB };

function granted(lessor: Lessor, ...args: Parameters<typeof req>): Lease {
  const { result } = lessor.acquire(req(...args));
  assert.equal(result.status, 'granted', JSON.stringify(result));
  return (result as { lease: Lease }).lease;
}

const grantsOf = (events: LessorEvent[]) =>
  events.filter((e): e is Extract<LessorEvent, { type: 'granted' }> => e.type === 'granted').map((e) => e.lease);

describe('Shared targets in the lessor', () => {
  it('refuses a third backup on a target of two from another host, and grants it when one ends', () => {
    const { lessor } = newLessor({ targets: [PBS] });
    const a = granted(lessor, { kind: 'GUEST', vm: 'vm1', host: 'h1', target: 'pbs' });
    granted(lessor, { kind: 'HYPERVISOR', vm: 'vm2', host: 'h2', target: 'pbs' });
    const third = req({ kind: 'GUEST', vm: 'vm3', host: 'h3', target: 'pbs' });
    assert.equal(lessor.acquire(third).result.status, 'queued');
    // Nothing else happens on h3: the end of h1's token must reach h3's waiter.
    const events = lessor.release(a.tokenId, a.fencing, OK);
    assert.deepEqual(
      grantsOf(events).map((l) => [l.host, l.vm, l.target]),
      [['h3', 'vm3', 'pbs']],
    );
    assert.deepEqual(
      lessor.targetViews().map((t) => [t.name, t.active, t.queued]),
      [['pbs', 2, 0]],
    );
  });

  it('holds the I/O budgets of its tokens within the target budget, a token without one counting its fair share', () => {
    const { lessor } = newLessor({ targets: [NAS] });
    lessor.ensureHost('h2');
    lessor.setPolicy('h2', { budgetIoBytesPerSec: 60 * MIB });
    // h1 grants without an I/O budget: on NAS, a token then gets 120 MiB/s / 4 = 30 MiB/s.
    const fair = granted(lessor, { kind: 'GUEST', vm: 'vm1', host: 'h1', target: 'nas' });
    assert.equal(fair.budget.ioBytesPerSec, 30 * MIB);
    granted(lessor, { kind: 'GUEST', vm: 'vm2', host: 'h2', target: 'nas' });
    // 30 + 60 + 60 > 120: the second 60 MiB/s backup waits though the target holds only two of four.
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm3', host: 'h2', target: 'nas' })).result.status, 'queued');
    const [waiting] = lessor.waiting('h2');
    assert.equal(waiting.targetFull, 'nas');
    assert.match(waiting.waitingFor, /^target nas full: I\/O 90\.0 MiB\/s \+ 60\.0 MiB\/s > 120 MiB\/s$/);
    assert.equal(waiting.estimatedStart, 0);
    // One of 30 MiB/s still fits beside them.
    granted(lessor, { kind: 'GUEST', vm: 'vm4', host: 'h1', target: 'nas' });
    assert.deepEqual(
      lessor.targetViews().map((t) => [t.active, t.ioInUse, t.queued]),
      [[3, 120 * MIB, 1]],
    );
  });

  it('says TARGET_FULL with the target name and its count while a request waits for its target', () => {
    const { lessor } = newLessor({ targets: [{ name: 'pbs', maxConcurrent: 1, ioBytesPerSec: 0 }] });
    granted(lessor, { kind: 'GUEST', vm: 'vm1', host: 'h1', target: 'pbs' });
    lessor.acquire(req({ kind: 'GUEST', vm: 'vm2', host: 'h2', target: 'pbs' }));
    const [w] = lessor.waiting('h2');
    assert.equal(w.targetFull, 'pbs');
    assert.equal(w.waitingFor, 'target pbs full: 1/1 backups on it');
  });

  it('lets other requests of a host pass one that waits for its target', () => {
    const { lessor } = newLessor({ targets: [{ name: 'pbs', maxConcurrent: 1, ioBytesPerSec: 0 }] });
    granted(lessor, { kind: 'GUEST', vm: 'vm1', host: 'h1', target: 'pbs' });
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm2', host: 'h2', target: 'pbs' })).result.status, 'queued');
    const other = granted(lessor, { kind: 'GUEST', vm: 'vm3', host: 'h2' });
    assert.equal(other.target, undefined);
  });

  it('refuses a request naming a target that is not configured, naming the field and the targets', () => {
    const { lessor } = newLessor({ targets: [PBS, NAS] });
    assert.throws(
      () => lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', target: 'tape' })),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.field === 'target' &&
        e.message === `target: no shared target "tape" (coordinator.yaml's targets: nas, pbs)`,
    );
    assert.deepEqual(lessor.hostNames(), []);
  });

  it('counts restored tokens on their target, with a fresh TTL', () => {
    const first = newLessor({ targets: [PBS] });
    const a = granted(first.lessor, { kind: 'GUEST', vm: 'vm1', host: 'h1', target: 'pbs' });
    const b = granted(first.lessor, { kind: 'GUEST', vm: 'vm2', host: 'h2', target: 'pbs' });
    const second = newLessor({ targets: [PBS] });
    second.lessor.restore({
      hosts: ['h1', 'h2'].map((name) => ({ ...first.lessor.host(name) })),
      leases: [a, b],
      ended: [],
    });
    assert.equal(
      second.lessor.acquire(req({ kind: 'GUEST', vm: 'vm3', host: 'h1', target: 'pbs' })).result.status,
      'queued',
    );
  });

  it("grants a target's fair share, its kind's budget, or the target's whole budget at most", () => {
    assert.equal(targetIoBudget(0, NAS), 30 * MIB);
    assert.equal(targetIoBudget(10 * MIB, NAS), 10 * MIB);
    assert.equal(targetIoBudget(500 * MIB, NAS), 120 * MIB);
    assert.equal(targetIoBudget(7, PBS), 7);
  });
});

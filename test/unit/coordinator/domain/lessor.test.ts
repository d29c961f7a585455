import { strict as assert } from 'node:assert';
import {
  RequestConflictError,
  StaleFencingTokenError,
  TokenEndedError,
  TokenNotFoundError,
} from '../../../../coordinator/domain/errors';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { Lease } from '../../../../coordinator/domain/lease';
import { Lessor } from '../../../../coordinator/domain/lessor';
import { T0, counterIds, newLessor, req } from './fixtures';

const OK = { success: true, bytes: 10, durationMs: 5, exitCode: 0, message: '' };

function grantedLease(result: ReturnType<Lessor['acquire']>['result']): Lease {
  assert.equal(result.status, 'granted');
  return (result as { lease: Lease }).lease;
}

const grants = (events: LessorEvent[]) =>
  events.filter((e): e is Extract<LessorEvent, { type: 'granted' }> => e.type === 'granted').map((e) => e.lease);

describe('Lessor', () => {
  it('grants a guest token at once on an idle host, with fencing 1 and its slot', () => {
    const { lessor } = newLessor();
    const r = req({ kind: 'GUEST', vm: 'vm1', windowEnd: T0 + 3_600_000 });
    const { result, events } = lessor.acquire(r);
    const lease = grantedLease(result);
    assert.equal(lease.fencing, 1);
    assert.deepEqual(lease.slot, { start: T0, expectedEnd: T0 + 60_000, windowEnd: T0 + 3_600_000 });
    assert.equal(lease.expiresAt, T0 + 30_000);
    assert.deepEqual(
      events.map((e) => e.type),
      ['host-added', 'granted'],
    );
  });

  it('refuses a hypervisor token while a guest backup holds one, and grants it after the release', () => {
    const { lessor } = newLessor();
    const guest = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const hv = req({ kind: 'HYPERVISOR', vm: 'vm2' });
    assert.equal(lessor.acquire(hv).result.status, 'queued');
    const events = lessor.release(guest.tokenId, guest.fencing, OK);
    const [granted] = grants(events);
    assert.equal(granted.requestId, hv.requestId);
    assert.equal(granted.fencing, 2);
  });

  it('refuses a guest token while a hypervisor backup holds one', () => {
    const { lessor } = newLessor();
    grantedLease(lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm1' })).result);
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm2' })).result.status, 'queued');
  });

  it('holds at most one token per VM', () => {
    const { lessor } = newLessor();
    grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', job: 'other' })).result.status, 'queued');
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm2' })).result.status, 'granted');
  });

  it('caps concurrent guest tokens per host by policy', () => {
    const { lessor } = newLessor();
    for (let i = 1; i <= 4; i++) grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: `vm${i}` })).result);
    assert.equal(lessor.acquire(req({ kind: 'GUEST', vm: 'vm5' })).result.status, 'queued');
    lessor.setPolicy('h1', { maxGuestTokens: 5 });
    assert.equal(lessor.activeLeases('h1').length, 5);
  });

  it('stops new guest grants once a hypervisor request waits, so it is not starved', () => {
    const { lessor } = newLessor();
    const g1 = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const hv = req({ kind: 'HYPERVISOR', vm: 'vm9' });
    lessor.acquire(hv);
    // The guest cap (4) would allow this one, but the hypervisor request came first.
    const late = req({ kind: 'GUEST', vm: 'vm2' });
    assert.equal(lessor.acquire(late).result.status, 'queued');
    const afterRelease = grants(lessor.release(g1.tokenId, g1.fencing, OK));
    assert.deepEqual(
      afterRelease.map((l) => l.requestId),
      [hv.requestId],
    );
    const hvLease = afterRelease[0];
    const next = grants(lessor.release(hvLease.tokenId, hvLease.fencing, OK));
    assert.deepEqual(
      next.map((l) => l.requestId),
      [late.requestId],
    );
  });

  it('orders waiting requests of one kind by priority, then arrival', () => {
    const { lessor } = newLessor({
      defaultPolicy: {
        maxGuestTokens: 1,
        maxHypervisorTokens: 1,
        leaseTtlMs: 30_000,
        allowOverrun: false,
        reportIntervalMs: 10_000,
      },
    });
    const first = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const low = req({ kind: 'GUEST', vm: 'vm2', priority: 0 });
    const high = req({ kind: 'GUEST', vm: 'vm3', priority: 5 });
    lessor.acquire(low);
    lessor.acquire(high);
    assert.deepEqual(
      lessor.waiting('h1').map((w) => w.request.requestId),
      [high.requestId, low.requestId],
    );
    assert.equal(grants(lessor.release(first.tokenId, first.fencing, OK))[0].requestId, high.requestId);
  });

  it('hands out strictly increasing fencing numbers per host, independently per host', () => {
    const { lessor } = newLessor();
    const a1 = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const b1 = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', host: 'h2' })).result);
    lessor.release(a1.tokenId, a1.fencing, OK);
    const a2 = grantedLease(lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm1' })).result);
    assert.deepEqual([a1.fencing, b1.fencing, a2.fencing], [1, 1, 2]);
  });

  it('refuses renew and release with a stale fencing number, an unknown token or an ended one', () => {
    const { lessor } = newLessor();
    const lease = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    assert.throws(() => lessor.renew(lease.tokenId, lease.fencing + 1), StaleFencingTokenError);
    assert.throws(() => lessor.release(lease.tokenId, 0, OK), StaleFencingTokenError);
    assert.throws(() => lessor.renew('nope', 1), TokenNotFoundError);
    lessor.release(lease.tokenId, lease.fencing, OK);
    assert.throws(() => lessor.renew(lease.tokenId, lease.fencing), TokenEndedError);
    assert.equal(lessor.activeLeases().length, 0);
  });

  it('extends a lease on renew and expires it when it is not renewed', () => {
    const { lessor, clock } = newLessor();
    const lease = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const waiting = req({ kind: 'HYPERVISOR', vm: 'vm2' });
    lessor.acquire(waiting);
    clock.advance(20_000);
    assert.equal(lessor.renew(lease.tokenId, lease.fencing).lease.expiresAt, T0 + 50_000);
    clock.advance(29_999);
    assert.deepEqual(lessor.tick(), []);
    assert.equal(lessor.nextDeadline(), T0 + 50_000);
    clock.advance(1);
    const events = lessor.tick();
    assert.deepEqual(
      events.map((e) => e.type),
      ['expired', 'granted'],
    );
    assert.equal(grants(events)[0].requestId, waiting.requestId);
  });

  it('denies a request whose latest start passes while it waits, and one already too late', () => {
    const { lessor, clock } = newLessor();
    grantedLease(lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm1' })).result);
    const r = req({ kind: 'GUEST', vm: 'vm2', latestStart: T0 + 5_000, windowEnd: T0 + 5_000 });
    lessor.acquire(r);
    clock.advance(5_000);
    const events = lessor.tick();
    assert.equal(events.length, 1);
    assert.equal(events[0].type, 'denied');
    assert.match((events[0] as { message: string }).message, /window closed/);
    const late = lessor.acquire(req({ kind: 'GUEST', vm: 'vm3', latestStart: T0 }));
    assert.equal(late.result.status, 'denied');
  });

  it('revokes a holder past its window end unless policy allows overrun', () => {
    const { lessor, clock } = newLessor();
    const lease = grantedLease(
      lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', ttlMs: 3_600_000, windowEnd: T0 + 10_000 })).result,
    );
    lessor.setPolicy('h1', { allowOverrun: true });
    clock.advance(10_000);
    assert.deepEqual(lessor.tick(), []);
    lessor.setPolicy('h1', { allowOverrun: false });
    const [revoked] = lessor.tick();
    assert.equal(revoked.type, 'revoked');
    assert.equal((revoked as { lease: Lease }).lease.tokenId, lease.tokenId);
  });

  it('answers a retried request id with the same token, and never with a second one', () => {
    const { lessor } = newLessor();
    const r = req({ kind: 'GUEST', vm: 'vm1' });
    const first = grantedLease(lessor.acquire(r).result);
    const again = lessor.acquire(r);
    assert.deepEqual(grantedLease(again.result), first);
    assert.deepEqual(again.events, []);
    assert.throws(() => lessor.acquire({ ...r, vm: 'vm2' }), RequestConflictError);
    lessor.release(first.tokenId, first.fencing, OK);
    const after = lessor.acquire(r).result;
    assert.equal(after.status, 'denied');
    assert.equal((after as { reason: string }).reason, 'REQUEST_ID_USED');
  });

  it('remembers a bounded number of ended request ids, forgetting the oldest first', () => {
    const { lessor } = newLessor({ maxEndedRequests: 2 });
    const requests = [1, 2, 3].map(() => req({ kind: 'GUEST', vm: 'vm1' }));
    for (const r of requests) {
      const lease = grantedLease(lessor.acquire(r).result);
      lessor.release(lease.tokenId, lease.fencing, OK);
    }
    assert.equal(lessor.acquire(requests[2]).result.status, 'denied');
    assert.equal(lessor.acquire(requests[1]).result.status, 'denied');
    // The oldest was forgotten: its retry is a new request.
    assert.equal(lessor.acquire(requests[0]).result.status, 'granted');
  });

  it('withdraws a cancelled request, letting the other kind go on', () => {
    const { lessor } = newLessor();
    grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const hv = req({ kind: 'HYPERVISOR', vm: 'vm9' });
    lessor.acquire(hv);
    const guest = req({ kind: 'GUEST', vm: 'vm2' });
    lessor.acquire(guest);
    const events = lessor.cancel(hv.requestId);
    assert.deepEqual(
      events.map((e) => e.type),
      ['cancelled', 'granted'],
    );
    assert.equal(grants(events)[0].requestId, guest.requestId);
    assert.deepEqual(lessor.cancel(hv.requestId), []);
  });

  it('grants nothing on a paused host until it is resumed', () => {
    const { lessor } = newLessor();
    lessor.ensureHost('h1');
    lessor.pause('h1', 'maintenance');
    const r = req({ kind: 'GUEST', vm: 'vm1' });
    assert.equal(lessor.acquire(r).result.status, 'queued');
    assert.equal(lessor.waiting('h1')[0].waitingFor, 'host is paused');
    assert.equal(grants(lessor.resume('h1'))[0].requestId, r.requestId);
  });

  it("starts a guest token on the host's backup budget, and a hypervisor token unbudgeted", () => {
    const { lessor } = newLessor();
    lessor.ensureHost('h1');
    lessor.setPolicy('h1', { budgetCpuPercent: 40, budgetIoBytesPerSec: 5_000_000 });
    const guest = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    assert.deepEqual(guest.budget, { cpuPercent: 40, ioBytesPerSec: 5_000_000 });
    lessor.release(guest.tokenId, guest.fencing, OK);
    const hv = grantedLease(lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm1' })).result);
    assert.deepEqual(hv.budget, { cpuPercent: 0, ioBytesPerSec: 0 });
  });

  it('estimates a waiting request to start when the holder is expected to end', () => {
    const { lessor, clock } = newLessor();
    grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1', expectedDurationMs: 120_000 })).result);
    lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm2', expectedDurationMs: 60_000 }));
    lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'vm3', expectedDurationMs: 60_000 }));
    clock.advance(10_000);
    const waiting = lessor.waiting('h1');
    assert.deepEqual(
      waiting.map((w) => w.estimatedStart),
      [T0 + 120_000, T0 + 180_000],
    );
    assert.deepEqual(
      waiting.map((w) => w.position),
      [1, 2],
    );
    assert.match(waiting[0].waitingFor, /GUEST backup/);
  });

  it('restores leases with a fresh TTL and goes on with the fencing counter', () => {
    const { lessor, clock } = newLessor();
    const lease = grantedLease(lessor.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result);
    const host = lessor.host('h1');
    clock.advance(25_000);
    const restarted = new Lessor(clock, counterIds('new'));
    const events = restarted.restore({ hosts: [host], leases: lessor.activeLeases(), ended: [] });
    assert.deepEqual(
      events.map((e) => e.type),
      ['restored'],
    );
    assert.equal(restarted.lease(lease.tokenId)!.expiresAt, T0 + 25_000 + 30_000);
    assert.equal(restarted.renew(lease.tokenId, lease.fencing).lease.fencing, 1);
    assert.equal(grantedLease(restarted.acquire(req({ kind: 'GUEST', vm: 'vm2' })).result).fencing, 2);
    assert.equal(restarted.acquire(req({ kind: 'GUEST', vm: 'vm1' })).result.status, 'queued');
    assert.equal(restarted.acquire(req({ kind: 'HYPERVISOR', vm: 'vm3' })).result.status, 'queued');
  });
});

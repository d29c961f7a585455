import { strict as assert } from 'node:assert';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { Lease } from '../../../../coordinator/domain/lease';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import { newLessor, req } from './fixtures';

const types = (events: LessorEvent[]) => events.map((e) => e.type);

describe('Lessor: VM migration (placement)', () => {
  it('holds a HYPERVISOR request of a migrating VM, saying why, and grants it once the VM has arrived', () => {
    const { lessor } = newLessor({ defaultPolicy: { ...DEFAULT_POLICY, maxHypervisorTokens: 2 } });
    lessor.ensureHost('h1');
    assert.deepEqual(types(lessor.migrationStarted('h1', 'u1', 'vm1', 'in')), ['vm-migrating']);
    const hv = req({ kind: 'HYPERVISOR', vm: 'u1' });
    assert.equal(lessor.acquire(hv).result.status, 'queued');
    const [info] = lessor.waiting('h1');
    assert.match(info.waitingFor, /^vm1 is migrating to this host/);
    assert.equal(info.held, true);
    // Another VM's hypervisor backup is not held.
    assert.equal(lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'u2' })).result.status, 'granted');
    const ended = lessor.migrationEnded('h1', 'u1', 'vm1', 'in', 'arrived');
    assert.deepEqual(types(ended), ['vm-migrated', 'granted']);
  });

  it('denies the waiting requests of a VM that migrated away, and revokes its tokens here', () => {
    const { lessor } = newLessor();
    const guest = lessor.acquire(req({ kind: 'GUEST', vm: 'u1' }));
    assert.equal(guest.result.status, 'granted');
    const hv = req({ kind: 'HYPERVISOR', vm: 'u1' });
    lessor.migrationStarted('h1', 'u1', 'vm1', 'out');
    assert.equal(lessor.acquire(hv).result.status, 'queued');
    const events = lessor.migrationEnded('h1', 'u1', 'vm1', 'out', 'left');
    assert.deepEqual(types(events), ['vm-migrated', 'denied', 'revoked']);
    const denied = events[1] as Extract<LessorEvent, { type: 'denied' }>;
    assert.equal(denied.reason, 'VM_MIGRATED_AWAY');
    assert.equal(denied.request.requestId, hv.requestId);
    assert.match(denied.message, /vm1 migrated away from host h1/);
    assert.equal(lessor.waiting('h1').length, 0);
    assert.equal(lessor.activeLeases('h1').length, 0);
  });

  it('keeps a running HYPERVISOR token valid through a migration attempt, and names it in the event', () => {
    const { lessor } = newLessor();
    const granted = lessor.acquire(req({ kind: 'HYPERVISOR', vm: 'u1' })).result;
    const lease = (granted as { lease: Lease }).lease;
    const [started] = lessor.migrationStarted('h1', 'u1', 'vm1', 'out');
    assert.equal(started.type, 'vm-migrating');
    assert.deepEqual(
      (started as Extract<LessorEvent, { type: 'vm-migrating' }>).hypervisor.map((l) => l.tokenId),
      [lease.tokenId],
    );
    // libvirt refused the migration (a backup job runs): the VM stays, so does its token.
    assert.deepEqual(types(lessor.migrationEnded('h1', 'u1', 'vm1', 'out', 'failed')), ['vm-migrated']);
    assert.equal(lessor.renew(lease.tokenId, lease.fencing).lease.tokenId, lease.tokenId);
  });
});

/**
 * Property test of shared targets: random sequences of acquires, releases, cancels, expiries, policy
 * changes and restarts (reload from the SQLite store) on several hosts whose requests name two shared
 * targets (or none). After every step:
 *  1. no target has more active tokens than its maxConcurrent, on all hosts together;
 *  2. the I/O budgets of a target's active tokens add up to at most its ioBudget;
 *  3. a request said to wait for its target (TARGET_FULL) finds no room there for its own I/O budget;
 * and once every holder releases, every waiter of every host is served: the wake-up after a token's end
 * reaches the waiters of its target on hosts where nothing else happens.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { ManualClock } from '../../../../common/util/clock';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { Lease, TokenKind } from '../../../../coordinator/domain/lease';
import { Lessor } from '../../../../coordinator/domain/lessor';
import { DEFAULT_POLICY, completePolicy } from '../../../../coordinator/domain/policy';
import { type TargetLimits, targetFits, targetIoBudget } from '../../../../coordinator/domain/targets';
import { SqliteStore } from '../../../../coordinator/store/sqlite-store';
import { propertyRuns } from '../../../helpers/property-runs';
import { T0, counterIds, req } from './fixtures';

const HOSTS = ['h1', 'h2', 'h3'];
const VMS = ['vm1', 'vm2', 'vm3'];
const MIB = 1024 * 1024;
const TARGETS: TargetLimits[] = [
  { name: 'pbs', maxConcurrent: 2, ioBytesPerSec: 0 },
  { name: 'nas', maxConcurrent: 3, ioBytesPerSec: 100 * MIB },
];
const TTL_MS = 30_000;

const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('acquire' as const),
      kind: fc.constantFrom<TokenKind>('GUEST', 'HYPERVISOR'),
      host: fc.constantFrom(...HOSTS),
      vm: fc.constantFrom(...VMS),
      target: fc.constantFrom('pbs', 'nas', ''),
    }),
  },
  { weight: 3, arbitrary: fc.record({ type: fc.constant('release' as const), lease: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('cancel' as const), request: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
  },
  {
    weight: 1,
    // A budget of its own per kind: what a token on `nas` counts for against its 100 MiB/s.
    arbitrary: fc.record({
      type: fc.constant('budget' as const),
      host: fc.constantFrom(...HOSTS),
      guestMiB: fc.constantFrom(0, 20, 40, 60, 150),
      hypervisorMiB: fc.constantFrom(0, 30, 80),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('restart' as const) }) },
);

function checkLimits(lessor: Lessor): void {
  const leases = lessor.activeLeases();
  for (const t of TARGETS) {
    const on = leases.filter((l) => l.target === t.name);
    assert.ok(on.length <= t.maxConcurrent, `${on.length} tokens on ${t.name}, at most ${t.maxConcurrent}`);
    const io = on.reduce((sum, l) => sum + l.budget.ioBytesPerSec, 0);
    if (t.ioBytesPerSec > 0) assert.ok(io <= t.ioBytesPerSec, `${io} B/s on ${t.name}, at most ${t.ioBytesPerSec}`);
    const view = lessor.targetViews().find((v) => v.name === t.name)!;
    assert.deepEqual([view.active, view.ioInUse], [on.length, io], `${t.name}'s view is its tokens'`);
  }
}

/** A waiter said to wait for its target (TARGET_FULL) must find it full: no room for its own I/O budget. */
function checkTargetFullIsTrue(lessor: Lessor): void {
  for (const host of HOSTS) {
    const policy = completePolicy(lessor.host(host).policy);
    for (const w of lessor.waiting(host)) {
      if (!w.targetFull) continue;
      const view = lessor.targetViews().find((v) => v.name === w.targetFull)!;
      const kindIo = w.request.kind === 'GUEST' ? policy.budgetIoBytesPerSec : policy.hypervisorBudgetIoBytesPerSec;
      const io = targetIoBudget(kindIo, view);
      const full = !targetFits(view, { active: view.active, ioBytesPerSec: view.ioInUse }, io);
      assert.ok(
        full,
        `${w.request.requestId} on ${host} waits for ${view.name}, which has room: ${JSON.stringify(view)}`,
      );
    }
  }
}

type Op = typeof op extends fc.Arbitrary<infer O> ? O : never;

function runSequence(ops: readonly Op[]): void {
  const clock = new ManualClock(T0);
  const ids = counterIds();
  const store = new SqliteStore(':memory:');
  const options = { targets: TARGETS, defaultPolicy: { ...DEFAULT_POLICY, leaseTtlMs: TTL_MS, maxGuestTokens: 2 } };
  const start = () => {
    const l = new Lessor(clock, ids, options);
    store.commitSync(l.restore(store.loadSync(clock.now() - 86_400_000)));
    for (const h of HOSTS) store.commitSync(l.ensureHost(h));
    return l;
  };
  let lessor = start();
  const held: Lease[] = [];
  const requests: string[] = [];
  const apply = (events: LessorEvent[]) => {
    store.commitSync(events);
    for (const e of events) {
      if (e.type === 'granted') held.push(e.lease);
      if (e.type === 'released' || e.type === 'expired' || e.type === 'revoked') {
        const i = held.findIndex((l) => l.tokenId === e.lease.tokenId);
        if (i >= 0) held.splice(i, 1);
      }
    }
  };
  try {
    for (const o of ops) {
      switch (o.type) {
        case 'acquire': {
          const input = req({ kind: o.kind, host: o.host, vm: o.vm, ...(o.target ? { target: o.target } : {}) });
          requests.push(input.requestId);
          apply(lessor.acquire(input).events);
          break;
        }
        case 'release': {
          const lease = held[o.lease % Math.max(1, held.length)];
          if (lease)
            apply(
              lessor.release(lease.tokenId, lease.fencing, { success: true, durationMs: 1, exitCode: 0, message: '' }),
            );
          break;
        }
        case 'cancel':
          if (requests.length > 0) apply(lessor.cancel(requests[o.request % requests.length]));
          break;
        case 'advance':
          clock.advance(o.ms);
          apply(lessor.tick());
          break;
        case 'budget':
          apply(
            lessor.setPolicy(o.host, {
              budgetIoBytesPerSec: o.guestMiB * MIB,
              hypervisorBudgetIoBytesPerSec: o.hypervisorMiB * MIB,
            }),
          );
          break;
        case 'restart':
          // What was waiting is not durable: its callers ask again after a restart.
          lessor = start();
          held.splice(0, held.length, ...lessor.activeLeases());
          break;
      }
      checkLimits(lessor);
      checkTargetFullIsTrue(lessor);
    }
    // Every holder releases, again and again: whatever waits on any host must be granted in the end.
    for (let round = 0; round < 100 && HOSTS.some((h) => lessor.waiting(h).length > 0); round++) {
      for (const lease of held.splice(0)) {
        apply(lessor.release(lease.tokenId, lease.fencing, { success: true, durationMs: 1, exitCode: 0, message: '' }));
        checkLimits(lessor);
      }
    }
    for (const h of HOSTS) assert.deepEqual(lessor.waiting(h), [], `requests left waiting on ${h}`);
  } finally {
    store.close();
  }
}

describe('Shared targets (random sequences on several hosts, SQLite store, restarts)', () => {
  it('never has a target over its concurrency or I/O budget, and serves every waiter of every host', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 80 }), (ops) => runSequence(ops)),
      { numRuns: propertyRuns(300) },
    );
  });
});

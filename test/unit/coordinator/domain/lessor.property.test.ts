/**
 * Property test of the lessor and the SQLite store together: thousands of random sequences of acquire,
 * renew, release, cancel, expiry, pause, policy changes, migrations and restarts (reload from the store),
 * across both kinds, several hosts and VMs. After every step the rules must hold:
 *  1. no GUEST and HYPERVISOR token active together on a host;
 *  2. at most one token per VM, and per-kind caps;
 *  3. no grant overtakes an earlier waiting request of the other kind (unless the start gate holds that one);
 *  4. fencing numbers strictly increase per host, and stale ones are refused;
 *  6. a restart restores exactly the committed active tokens, and a request id never yields two tokens;
 *  7. the start gate: nothing starts before its planned slot, nor on a VM reported busy unless it is forced
 *     (too close to its window's end) and then on the throttled budget;
 *  8. no GUEST token of a VM frozen by the hypervisor's tools is granted before its thaw or its bound;
 *  9. no HYPERVISOR token of a VM is granted while it migrates, and a VM that left a host has nothing
 *     waiting or held there.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { ManualClock } from '../../../../common/util/clock';
import { StaleFencingTokenError } from '../../../../coordinator/domain/errors';
import type { LessorEvent } from '../../../../coordinator/domain/events';
import type { AcquireInput, TokenKind } from '../../../../coordinator/domain/lease';
import { Lessor } from '../../../../coordinator/domain/lessor';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import { STALE_REPORTS, forcedFrom } from '../../../../coordinator/domain/start-gate';
import { SqliteStore } from '../../../../coordinator/store/sqlite-store';
import { T0, counterIds } from './fixtures';
import { propertyRuns } from '../../../helpers/property-runs';

const HOSTS = ['h1', 'h2'];
const VMS = ['vm1', 'vm2', 'vm3', 'vm4'];
const REQUESTS = 24;

const requestSpec = fc.record({
  kind: fc.constantFrom<TokenKind>('GUEST', 'HYPERVISOR'),
  host: fc.constantFrom(...HOSTS),
  vm: fc.constantFrom(...VMS),
  priority: fc.integer({ min: 0, max: 2 }),
  latestStartMs: fc.oneof(fc.constant(0), fc.integer({ min: 1_000, max: 120_000 })),
  windowEndMs: fc.oneof(fc.constant(0), fc.integer({ min: 1_000, max: 200_000 })),
  expectedDurationMs: fc.integer({ min: 0, max: 60_000 }),
});

const op = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.constant('acquire' as const), req: fc.nat(REQUESTS - 1) }) },
  { weight: 3, arbitrary: fc.record({ type: fc.constant('renew' as const), lease: fc.nat(), stale: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ type: fc.constant('release' as const), lease: fc.nat(), stale: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('cancel' as const), req: fc.nat(REQUESTS - 1) }) },
  {
    weight: 3,
    arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('restart' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('pause' as const), host: fc.constantFrom(...HOSTS), on: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('load' as const),
      host: fc.constantFrom(...HOSTS),
      vm: fc.constantFrom(...VMS),
      cpu: fc.integer({ min: 0, max: 100 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('plan' as const),
      host: fc.constantFrom(...HOSTS),
      runs: fc.array(fc.record({ req: fc.nat(REQUESTS - 1), startMs: fc.integer({ min: 0, max: 200_000 }) }), {
        maxLength: 6,
      }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('freeze' as const),
      host: fc.constantFrom(...HOSTS),
      vm: fc.constantFrom(...VMS),
      on: fc.boolean(),
      holdMs: fc.integer({ min: 1, max: 60_000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('policy' as const),
      host: fc.constantFrom(...HOSTS),
      guests: fc.integer({ min: 1, max: 3 }),
      overrun: fc.boolean(),
    }),
  },
);

const migrate = fc.record({
  type: fc.constant('migrate' as const),
  host: fc.constantFrom(...HOSTS),
  vm: fc.constantFrom(...VMS),
  step: fc.constantFrom('out' as const, 'in' as const, 'arrived' as const, 'left' as const, 'failed' as const),
});
const ops = fc.oneof({ weight: 12, arbitrary: op }, { weight: 1, arbitrary: migrate });

type Op = typeof ops extends fc.Arbitrary<infer T> ? T : never;
type RequestSpec = typeof requestSpec extends fc.Arbitrary<infer T> ? T : never;

function run(specs: RequestSpec[], ops: Op[]): void {
  const clock = new ManualClock(T0);
  const ids = counterIds();
  const store = new SqliteStore(':memory:');
  const start = (): Lessor => {
    const l = new Lessor(clock, ids);
    store.commitSync(l.restore(store.loadSync(clock.now() - 86_400_000)));
    return l;
  };
  let lessor = start();
  const inputs: AcquireInput[] = specs.map((s, i) => ({
    requestId: `r${i}`,
    kind: s.kind,
    host: s.host,
    vm: s.vm,
    job: 'j',
    priority: s.priority,
    expectedDurationMs: s.expectedDurationMs,
    latestStart: s.latestStartMs && T0 + s.latestStartMs,
    windowEnd: s.windowEndMs && T0 + s.windowEndMs + s.latestStartMs,
    ttlMs: 0,
  }));
  const grantsPerRequest = new Map<string, number>();
  const lastFencing = new Map<string, number>();
  const seqOf = new Map<string, number>();
  const grantedRequests = new Set<string>();
  // What the test told the gate, to check its grants against independently: planned start by request id
  // (every request of the test has its own window, so a run is matched by its request's), and VM loads.
  const plannedStart = new Map<string, number>();
  const vmLoad = new Map<string, { cpu: number; at: number }>();
  // Rule 8's model: until when each host/VM is frozen.
  const frozenUntil = new Map<string, number>();
  // Rule 9's model: the host/VMs migrating.
  const migrating = new Set<string>();
  const THROTTLED = {
    cpuPercent: DEFAULT_POLICY.throttledCpuPercent,
    ioBytesPerSec: DEFAULT_POLICY.throttledIoBytesPerSec,
  };

  for (const o of ops) {
    const waitingBefore = HOSTS.flatMap((h) => lessor.waiting(h).map((w) => w.request));
    for (const w of waitingBefore) seqOf.set(w.requestId, w.seq);
    let events: LessorEvent[] = [];
    const active = lessor.activeLeases().sort((a, b) => a.tokenId.localeCompare(b.tokenId));
    switch (o.type) {
      case 'acquire': {
        const r = lessor.acquire(inputs[o.req]);
        events = r.events;
        if (r.result.status === 'queued') seqOf.set(r.result.request.requestId, r.result.request.seq);
        if (grantedRequests.has(inputs[o.req].requestId) && r.result.status === 'queued') {
          assert.fail(`request ${inputs[o.req].requestId} had a token and was queued again`);
        }
        break;
      }
      case 'renew':
      case 'release': {
        if (active.length === 0) break;
        const lease = active[o.lease % active.length];
        const call = () =>
          o.type === 'renew'
            ? lessor.renew(lease.tokenId, lease.fencing + (o.stale ? -1 : 0)).events
            : lessor.release(lease.tokenId, lease.fencing + (o.stale ? -1 : 0), {
                success: true,
                bytes: 0,
                durationMs: 0,
                exitCode: 0,
                message: '',
              });
        if (o.stale) {
          assert.throws(call, StaleFencingTokenError);
          assert.deepEqual(
            lessor.activeLeases().sort((a, b) => a.tokenId.localeCompare(b.tokenId)),
            active,
          );
        } else events = call();
        break;
      }
      case 'cancel':
        events = lessor.cancel(inputs[o.req].requestId);
        break;
      case 'advance':
        clock.advance(o.ms);
        events = lessor.tick();
        break;
      case 'pause':
        lessor.ensureHost(o.host).forEach((e) => store.commitSync([e]));
        events = o.on ? lessor.pause(o.host, 'test') : lessor.resume(o.host);
        break;
      case 'policy':
        store.commitSync(lessor.ensureHost(o.host));
        events = lessor.setPolicy(o.host, { maxGuestTokens: o.guests, allowOverrun: o.overrun });
        break;
      case 'load':
        store.commitSync(lessor.ensureHost(o.host));
        vmLoad.set(`${o.host}/${o.vm}`, { cpu: o.cpu, at: clock.now() });
        events = lessor.setVmLoad(o.host, o.vm, { cpuPercent: o.cpu, ioBytesPerSec: 0, at: clock.now() });
        break;
      case 'freeze': {
        store.commitSync(lessor.ensureHost(o.host));
        const key = `${o.host}/${o.vm}`;
        if (o.on) frozenUntil.set(key, clock.now() + o.holdMs);
        else frozenUntil.delete(key);
        events = o.on ? lessor.freezeVm(o.host, o.vm, 'qemu-guest-agent', o.holdMs) : lessor.thawVm(o.host, o.vm);
        break;
      }
      case 'migrate': {
        store.commitSync(lessor.ensureHost(o.host));
        const key = `${o.host}/${o.vm}`;
        if (o.step === 'out' || o.step === 'in') {
          migrating.add(key);
          events = lessor.migrationStarted(o.host, o.vm, o.vm, o.step);
        } else {
          migrating.delete(key);
          events = lessor.migrationEnded(o.host, o.vm, o.vm, 'out', o.step);
        }
        break;
      }
      case 'plan': {
        store.commitSync(lessor.ensureHost(o.host));
        for (const [id, input] of inputs.entries()) if (input.host === o.host) plannedStart.delete(`r${id}`);
        // Only requests with a window: one without is matched by time, not by its window.
        const runs = o.runs.filter((r) => inputs[r.req].host === o.host && inputs[r.req].windowEnd > 0);
        const unique = [...new Map(runs.map((r) => [r.req, r])).values()];
        // A slot past the request's own latest start or window never holds it (the gate does not match it).
        const deadline = (i: (typeof inputs)[number]) => Math.min(i.latestStart || Infinity, i.windowEnd);
        for (const r of unique)
          if (T0 + r.startMs < deadline(inputs[r.req])) plannedStart.set(`r${r.req}`, T0 + r.startMs);
        events = lessor.setPlan(
          o.host,
          unique.map((r) => {
            const input = inputs[r.req];
            return {
              kind: input.kind,
              vm: input.vm,
              job: input.job,
              start: T0 + r.startMs,
              earliestStart: T0,
              windowEnd: input.windowEnd,
            };
          }),
        );
        break;
      }
      case 'restart': {
        const before = lessor
          .activeLeases()
          .map((l) => [l.tokenId, l.fencing, l.kind, l.vm])
          .sort();
        lessor = start();
        plannedStart.clear();
        vmLoad.clear();
        frozenUntil.clear();
        migrating.clear();
        const after = lessor
          .activeLeases()
          .map((l) => [l.tokenId, l.fencing, l.kind, l.vm])
          .sort();
        assert.deepEqual(after, before, 'a restart restores exactly the committed active tokens');
        break;
      }
    }
    store.commitSync(events);

    // Rule 3: a grant never overtakes a waiting request of the other kind that arrived earlier.
    const left = new Set(
      events
        .filter((e) => e.type === 'denied' || e.type === 'cancelled')
        .map((e) => (e as { request: { requestId: string } }).request.requestId),
    );
    const held = new Set(
      HOSTS.flatMap((h) =>
        lessor
          .waiting(h)
          .filter((w) => w.held)
          .map((w) => w.request.requestId),
      ),
    );
    for (const e of events) {
      if (e.type !== 'granted') continue;
      const seq = seqOf.get(e.lease.requestId)!;
      const overtaken = waitingBefore.find(
        (w) =>
          w.host === e.lease.host &&
          w.kind !== e.lease.kind &&
          w.seq < seq &&
          !left.has(w.requestId) &&
          !held.has(w.requestId),
      );
      assert.equal(overtaken, undefined, `grant of ${e.lease.requestId} overtook ${overtaken?.requestId}`);
      // Rule 4 and 6: fencing strictly increases per host; a request id never yields a second token.
      assert.ok(e.lease.fencing > (lastFencing.get(e.lease.host) ?? 0), 'fencing increases');
      lastFencing.set(e.lease.host, e.lease.fencing);
      grantsPerRequest.set(e.lease.requestId, (grantsPerRequest.get(e.lease.requestId) ?? 0) + 1);
      assert.equal(grantsPerRequest.get(e.lease.requestId), 1, `second token for ${e.lease.requestId}`);
      grantedRequests.add(e.lease.requestId);

      const now = clock.now();
      // Rule 8.
      if (e.lease.kind === 'GUEST') {
        const until = frozenUntil.get(`${e.lease.host}/${e.lease.vm}`) ?? 0;
        assert.ok(
          now >= until,
          `${e.lease.requestId} granted on VM ${e.lease.vm} frozen until ${until - T0}, now ${now - T0}`,
        );
      }
      // Rule 9: no hypervisor backup of a VM starts while it migrates.
      if (e.lease.kind === 'HYPERVISOR')
        assert.ok(!migrating.has(`${e.lease.host}/${e.lease.vm}`), `${e.lease.requestId} granted on a migrating VM`);
      // Rule 7.
      const planned = plannedStart.get(e.lease.requestId);
      assert.ok(planned === undefined || planned <= now, `${e.lease.requestId} started before its planned slot`);
      const load = vmLoad.get(`${e.lease.host}/${e.lease.vm}`);
      const vmBusy =
        load &&
        load.at >= now - STALE_REPORTS * DEFAULT_POLICY.reportIntervalMs &&
        load.cpu >= DEFAULT_POLICY.startBelowCpuPercent;
      if (vmBusy) {
        const input = inputs[Number(e.lease.requestId.slice(1))];
        // A request that waited was queued when it first asked; one granted in this step asked now.
        const queuedAt = waitingBefore.find((w) => w.requestId === e.lease.requestId)?.queuedAt ?? now;
        assert.ok(e.forced, `${e.lease.requestId} started on a busy VM without being forced`);
        assert.ok(
          now >= forcedFrom({ ...input, queuedAt }),
          `${e.lease.requestId} forced before waiting would miss its window`,
        );
        assert.deepEqual(e.lease.budget, THROTTLED, 'a forced start is on the throttled budget');
      } else {
        assert.equal(e.forced, undefined, `${e.lease.requestId} forced though its VM was not busy`);
      }
    }

    // Rule 9: a VM that left a host has nothing waiting or held there.
    if (o.type === 'migrate' && o.step === 'left') {
      const here = (r: { host: string; vm: string }) => r.host === o.host && r.vm === o.vm;
      assert.ok(!lessor.waiting(o.host).some((w) => here(w.request)), `${o.vm} left ${o.host} but still waits there`);
      assert.ok(!lessor.activeLeases(o.host).some(here), `${o.vm} left ${o.host} but still holds a token there`);
    }

    // Rules 1 and 2 on the state after the step.
    for (const host of HOSTS) {
      if (!lessor.hasHost(host)) continue;
      const leases = lessor.activeLeases(host);
      const kinds = new Set(leases.map((l) => l.kind));
      assert.ok(kinds.size <= 1, `GUEST and HYPERVISOR together on ${host}`);
      const vms = leases.map((l) => l.vm);
      assert.equal(new Set(vms).size, vms.length, `two tokens for one VM on ${host}`);
      const policy = lessor.host(host).policy;
      const cap = kinds.has('GUEST') ? policy.maxGuestTokens : policy.maxHypervisorTokens;
      // Lowering a cap does not revoke tokens already held: only count grants made under the current cap.
      if (!events.some((e) => e.type === 'policy-changed')) {
        const grantedNow = events.filter((e) => e.type === 'granted' && e.lease.host === host).length;
        if (grantedNow > 0) assert.ok(leases.length <= cap, `cap ${cap} exceeded on ${host}`);
      }
    }
  }
  store.close();
}

describe('Lessor properties (random sequences, SQLite store, restarts)', () => {
  it('keeps rules 1-4 and 6-9 after every step of thousands of random sequences', () => {
    fc.assert(
      fc.property(
        fc.array(requestSpec, { minLength: REQUESTS, maxLength: REQUESTS }),
        fc.array(ops, { minLength: 1, maxLength: 60 }),
        run,
      ),
      { numRuns: propertyRuns(2000) },
    );
  });
});

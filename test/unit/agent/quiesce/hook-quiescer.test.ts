import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import type { QuiesceHook } from '../../../../agent/quiesce/hook';
import { HookQuiescer, HookQuiescerOptions } from '../../../../agent/quiesce/hook-quiescer';
import { ThawResult, UnknownFreezeError } from '../../../../agent/quiesce/quiescer';

const T0 = Date.UTC(2026, 0, 5, 2, 0, 0);

/** How a fake hook behaves: succeed after `delayMs`, fail with a message, or never answer (until aborted). */
interface Behaviour {
  freeze?: 'ok' | 'fail' | 'hang';
  thaw?: 'ok' | 'fail' | 'hang';
  delayMs?: number;
  /** Ignores its abort signal and freezes anyway after delayMs (a hook that froze too late). */
  deaf?: boolean;
}

/** Hooks that record each call ("a:freeze", "a:thaw", "a:freeze-aborted") in `calls`. */
function fakeHooks(calls: string[], spec: Record<string, Behaviour>): QuiesceHook[] {
  const act = (name: string, what: 'freeze' | 'thaw', how: Behaviour, signal: AbortSignal) =>
    new Promise<string>((resolve, reject) => {
      calls.push(`${name}:${what}`);
      const mode = how[what] ?? 'ok';
      if (!how.deaf)
        signal.addEventListener('abort', () => (calls.push(`${name}:${what}-aborted`), reject(signal.reason)));
      if (mode === 'hang') return;
      const settle = () =>
        mode === 'ok' ? resolve(`${name} ${what} done`) : reject(new Error(`${name} ${what} broke`));
      // No timer for no delay: fake timers run a 0 ms timer set during a tick 1 ms later.
      if (how.delayMs) setTimeout(settle, how.delayMs);
      else settle();
    });
  return Object.entries(spec).map(([name, how]) => ({
    name,
    async freeze(signal) {
      const message = await act(name, 'freeze', how, signal);
      return { message, thaw: (s) => act(name, 'thaw', { ...how, delayMs: 0, deaf: false }, s) };
    },
  }));
}

describe('HookQuiescer', () => {
  let clock: sinon.SinonFakeTimers;
  let calls: string[];
  let autoThaws: { token: string; result: ThawResult }[];
  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    calls = [];
    autoThaws = [];
  });
  afterEach(() => clock.restore());

  /** Lets fake time run `ms` (the hooks' delays) and answers what `promise` settled with. */
  async function after<T>(promise: Promise<T>, ms = 0): Promise<T> {
    await clock.tickAsync(ms);
    return promise;
  }

  function quiescer(spec: Record<string, Behaviour>, options: Partial<HookQuiescerOptions> = {}) {
    return new HookQuiescer({
      hooks: async () => fakeHooks(calls, spec),
      clock: { now: () => Date.now() },
      onAutoThaw: (token, result) => autoThaws.push({ token, result }),
      ...options,
    });
  }

  it('freezes the hooks in order and thaws them in reverse', async () => {
    const q = quiescer({ a: {}, b: { delayMs: 30 }, c: {} });
    const frozen = await after(q.freeze('t1', 0), 30);
    assert.equal(frozen.state, 'FROZEN');
    assert.equal(frozen.state === 'FROZEN' && frozen.holdMs, 10_000, 'the default hold');
    assert.deepEqual(
      frozen.hooks.map((h) => [h.name, h.ok, h.message]),
      [
        ['a', true, 'a freeze done'],
        ['b', true, 'b freeze done'],
        ['c', true, 'c freeze done'],
      ],
    );
    assert.equal(frozen.hooks[1].durationMs, 30);
    assert.equal(q.frozenToken, 't1');
    await clock.tickAsync(1_000);
    const thawed = await after(q.thaw('t1'));
    assert.deepEqual(calls, ['a:freeze', 'b:freeze', 'c:freeze', 'c:thaw', 'b:thaw', 'a:thaw']);
    assert.deepEqual(
      thawed.hooks.map((h) => h.name),
      ['c', 'b', 'a'],
    );
    assert.equal(thawed.ok, true);
    assert.equal(thawed.autoThawed, false);
    assert.equal(thawed.frozenMs, 1_030);
    assert.equal(q.frozenToken, undefined);
    assert.deepEqual(await after(q.thaw('t1')), thawed, 'a repeated thaw answers the same');
    await clock.tickAsync(60_000);
    assert.equal(autoThaws.length, 0, 'no auto-thaw after a thaw');
  });

  it('on the first failing hook thaws the frozen ones in reverse and names the hook', async () => {
    const q = quiescer({ a: {}, b: {}, c: { freeze: 'fail' }, d: {} });
    const result = await after(q.freeze('t1', 0));
    assert.equal(result.state, 'FAILED');
    assert.equal(result.state === 'FAILED' && result.message, 'c could not freeze: c freeze broke');
    assert.deepEqual(calls, ['a:freeze', 'b:freeze', 'c:freeze', 'b:thaw', 'a:thaw']);
    assert.deepEqual(
      result.hooks.map((h) => [h.name, h.ok]),
      [
        ['a', true],
        ['b', true],
        ['c', false],
        ['b', true],
        ['a', true],
      ],
    );
    assert.equal(q.frozenToken, undefined);
    assert.equal(
      (await after(q.freeze('t2', 0))).state,
      'FAILED',
      'free for the next freeze (which fails the same way)',
    );
  });

  it('a failing thaw hook does not stop the others', async () => {
    const q = quiescer({ a: {}, b: { thaw: 'fail' }, c: {} });
    await after(q.freeze('t1', 0));
    const thawed = await after(q.thaw('t1'));
    assert.deepEqual(calls.slice(3), ['c:thaw', 'b:thaw', 'a:thaw']);
    assert.equal(thawed.ok, false);
    assert.equal(thawed.message, 'b could not thaw: b thaw broke');
    assert.deepEqual(
      thawed.hooks.map((h) => h.ok),
      [true, false, true],
    );
  });

  it('holds one freeze at a time: another token fails, the same token gets the same answer', async () => {
    const q = quiescer({ a: {} });
    const first = await after(q.freeze('t1', 0));
    const other = await after(q.freeze('t2', 0));
    assert.deepEqual(other, { state: 'FAILED', message: 'a freeze is already held for token t1', hooks: [] });
    assert.deepEqual(await after(q.freeze('t1', 0)), first);
    assert.deepEqual(calls, ['a:freeze'], 'no hook ran again');
    await after(q.thaw('t1'));
    assert.equal((await after(q.freeze('t2', 0))).state, 'FROZEN');
  });

  it('thaws by itself once the bound passes, counted from the first hook, and tells the listener', async () => {
    const q = quiescer({ a: { delayMs: 1_000 }, b: {} }, { defaultHoldMs: 10_000, maxHoldMs: 20_000 });
    const frozen = await after(q.freeze('t1', 5_000), 1_000);
    assert.equal(frozen.state === 'FROZEN' && frozen.holdMs, 5_000);
    await clock.tickAsync(3_999);
    assert.equal(
      q.frozenToken,
      't1',
      'still frozen just before the bound (4 s after the freeze answered, 5 s after it began)',
    );
    assert.equal(autoThaws.length, 0);
    await clock.tickAsync(1);
    assert.equal(q.frozenToken, undefined);
    assert.deepEqual(calls, ['a:freeze', 'b:freeze', 'b:thaw', 'a:thaw']);
    assert.equal(autoThaws.length, 1);
    assert.equal(autoThaws[0].token, 't1');
    assert.equal(autoThaws[0].result.autoThawed, true);
    assert.equal(autoThaws[0].result.frozenMs, 5_000);
    assert.match(autoThaws[0].result.message, /bound of 5s.*thawed by itself/);
    const late = await after(q.thaw('t1'));
    assert.equal(late.autoThawed, true, 'a thaw after the auto-thaw answers its result');
    assert.deepEqual(late, autoThaws[0].result);
  });

  it('caps the hold at the configured maximum', async () => {
    const q = quiescer({ a: {} }, { maxHoldMs: 8_000 });
    const frozen = await after(q.freeze('t1', 3_600_000));
    assert.equal(frozen.state === 'FROZEN' && frozen.holdMs, 8_000);
    await clock.tickAsync(8_000);
    assert.equal(autoThaws.length, 1);
    const defaulted = quiescer({ a: {} }, { defaultHoldMs: 30_000, maxHoldMs: 8_000 });
    const f2 = await after(defaulted.freeze('t2', 0));
    assert.equal(f2.state === 'FROZEN' && f2.holdMs, 8_000, 'the default is capped too');
  });

  it('fails a hook that exceeds the hook timeout, aborting it, and thaws the others', async () => {
    const q = quiescer({ a: {}, slow: { freeze: 'hang' }, c: {} }, { hookTimeoutMs: 2_000 });
    const pending = q.freeze('t1', 0);
    await clock.tickAsync(2_000);
    const result = await pending;
    assert.equal(result.state === 'FAILED' && result.message, 'slow could not freeze: timed out after 2s');
    assert.deepEqual(calls, ['a:freeze', 'slow:freeze', 'slow:freeze-aborted', 'a:thaw']);
  });

  it('a thaw hook that hangs times out and the others still thaw', async () => {
    const q = quiescer({ a: {}, b: { thaw: 'hang' } }, { hookTimeoutMs: 1_000 });
    await after(q.freeze('t1', 0));
    const pending = q.thaw('t1');
    await clock.tickAsync(1_000);
    const thawed = await pending;
    assert.deepEqual(calls.slice(2), ['b:thaw', 'b:thaw-aborted', 'a:thaw']);
    assert.equal(thawed.message, 'b could not thaw: timed out after 1s');
  });

  it('fails the freeze when the bound passes before every hook froze', async () => {
    const q = quiescer({ a: { delayMs: 3_000 }, b: { delayMs: 3_000 } }, { hookTimeoutMs: 5_000 });
    const pending = q.freeze('t1', 4_000);
    await clock.tickAsync(4_000);
    const result = await pending;
    assert.equal(result.state, 'FAILED');
    assert.match(
      result.state === 'FAILED' ? result.message : '',
      /^b could not freeze: the freeze's bound of 4s passed/,
    );
    assert.deepEqual(calls, ['a:freeze', 'b:freeze', 'b:freeze-aborted', 'a:thaw']);
    assert.equal(autoThaws.length, 0, 'never FROZEN, so nothing to report as auto-thawed');
  });

  it('a thaw that arrives while freezing stops the freeze and answers its rollback', async () => {
    const q = quiescer({ a: {}, b: { delayMs: 3_000 } });
    const freezing = q.freeze('t1', 0);
    await clock.tickAsync(1_000);
    assert.equal(q.frozenToken, 't1', 'held (partly frozen) while its hooks freeze');
    const thawed = await after(q.thaw('t1'));
    assert.equal((await freezing).state, 'FAILED');
    assert.deepEqual(calls, ['a:freeze', 'b:freeze', 'b:freeze-aborted', 'a:thaw']);
    assert.equal(thawed.ok, true);
    assert.deepEqual(
      thawed.hooks.map((h) => h.name),
      ['a'],
    );
    assert.equal(q.frozenToken, undefined);
  });

  it('thaws at once a hook that froze after its time was up', async () => {
    const q = quiescer({ a: {}, deaf: { delayMs: 3_000, deaf: true } }, { hookTimeoutMs: 1_000 });
    const pending = q.freeze('t1', 0);
    await clock.tickAsync(1_000);
    assert.equal((await pending).state, 'FAILED');
    assert.deepEqual(calls, ['a:freeze', 'deaf:freeze', 'a:thaw']);
    await clock.tickAsync(2_000);
    assert.deepEqual(calls, ['a:freeze', 'deaf:freeze', 'a:thaw', 'deaf:thaw']);
  });

  it('with no hooks configured answers FAILED: a snapshot would only be crash-consistent', async () => {
    const q = quiescer({});
    const result = await after(q.freeze('t1', 0));
    assert.equal(result.state, 'FAILED');
    assert.match(result.state === 'FAILED' ? result.message : '', /no quiesce hooks configured/);
  });

  it('a hook list that cannot be read fails the freeze with the reason', async () => {
    const q = quiescer(
      {},
      { hooks: async () => Promise.reject(new Error('cannot read the hooks directory /x: EACCES')) },
    );
    const result = await after(q.freeze('t1', 0));
    assert.equal(
      result.state === 'FAILED' && result.message,
      'cannot list the quiesce hooks: cannot read the hooks directory /x: EACCES',
    );
    assert.equal(q.frozenToken, undefined);
  });

  it('thawing a token it never froze is an error', async () => {
    const q = quiescer({ a: {} });
    await assert.rejects(q.thaw('nope'), UnknownFreezeError);
  });
});

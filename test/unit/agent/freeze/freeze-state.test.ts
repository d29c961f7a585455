import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { ManualClock } from '../../../../common/util/clock';
import { DEFAULT_FREEZE_HOLD_MS } from '../../../../common/domain/freeze-hold';
import { createLogger } from '../../../../common/util/log';
import { FreezeState, freezeSourceProblem } from '../../../../agent/freeze/freeze-state';

describe('agent freeze state', () => {
  let timers: sinon.SinonFakeTimers;
  let clock: ManualClock;
  let state: FreezeState;
  const log = createLogger({ level: 'error' });
  beforeEach(() => {
    timers = sinon.useFakeTimers();
    clock = new ManualClock(1_000_000);
    state = new FreezeState(clock, log);
  });
  afterEach(() => {
    state.end();
    timers.restore();
  });
  const advance = (ms: number) => {
    clock.advance(ms);
    timers.tick(ms);
  };

  it('has nothing to say before any freeze, and lets jobs go at once', async () => {
    assert.equal(state.notice(), undefined);
    assert.equal(state.frozen, false);
    await state.whenThawed();
  });

  it('holds waiters until the thaw, and says the remaining bound after a reconnect', async () => {
    assert.deepEqual(state.freeze('qemu-guest-agent', 0), {
      frozen: true,
      source: 'qemu-guest-agent',
      holdMs: DEFAULT_FREEZE_HOLD_MS,
    });
    let released = false;
    void state.whenThawed().then(() => (released = true));
    advance(60_000);
    await Promise.resolve();
    assert.equal(released, false);
    assert.deepEqual(state.notice(), {
      frozen: true,
      source: 'qemu-guest-agent',
      holdMs: DEFAULT_FREEZE_HOLD_MS - 60_000,
    });
    assert.deepEqual(state.thaw('qemu-guest-agent'), { frozen: false, source: 'qemu-guest-agent', holdMs: 0 });
    await Promise.resolve();
    assert.equal(released, true);
    assert.deepEqual(
      state.notice(),
      { frozen: false, source: 'qemu-guest-agent', holdMs: 0 },
      'the thaw, which the coordinator may have missed',
    );
  });

  it('lets waiters go when the bound passes without a thaw; a second freeze moves the bound', async () => {
    state.freeze('qemu-guest-agent', 10_000);
    let released = false;
    void state.whenThawed().then(() => (released = true));
    advance(9_000);
    state.freeze('qemu-guest-agent', 10_000);
    advance(9_000);
    await Promise.resolve();
    assert.equal(released, false, 'the second freeze moved the bound');
    advance(1_000);
    await Promise.resolve();
    assert.equal(released, true);
    assert.equal(state.frozen, false);
  });

  it('accepts as source what the coordinator accepts as a name', () => {
    assert.equal(freezeSourceProblem('qemu-guest-agent'), undefined);
    assert.match(freezeSourceProblem('') ?? '', /^expected a name/);
    assert.match(freezeSourceProblem('two words') ?? '', /got "two words"/);
  });
});

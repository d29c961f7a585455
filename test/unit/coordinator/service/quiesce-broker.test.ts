import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { createLogger } from '../../../../common/util/log';
import type { QuiesceEvent } from '../../../../coordinator/domain/events';
import type { Lease } from '../../../../coordinator/domain/lease';
import { type CommandSink, QuiesceBroker, type QuiesceReport } from '../../../../coordinator/service/quiesce-broker';
import type { v1 } from '../../../../proto';

const lease = (tokenId = 't1', vm = 'vm-1'): Lease => ({
  tokenId,
  requestId: `r-${tokenId}`,
  fencing: 3,
  kind: 'HYPERVISOR',
  host: 'host-a',
  vm,
  job: 'snap',
  priority: 0,
  ttlMs: 30_000,
  grantedAt: 0,
  expiresAt: 30_000,
  slot: { start: 0, expectedEnd: 0, windowEnd: 0 },
  budget: { ioBytesPerSec: 0, cpuPercent: 0 },
});

/** The sessions of connected VMs: what each was sent. */
class FakeSessions implements CommandSink {
  readonly sent: Array<{ vm: string; action: Omit<v1.Command, 'commandId'> }> = [];
  readonly connected = new Set<string>(['vm-1']);
  push(vm: string, action: Omit<v1.Command, 'commandId'>): boolean {
    if (!this.connected.has(vm)) return false;
    this.sent.push({ vm, action });
    return true;
  }
  kinds(): string[] {
    return this.sent.map((s) =>
      s.action.freeze ? `freeze ${s.action.freeze.tokenId}` : `thaw ${s.action.thaw!.tokenId}`,
    );
  }
}

const report = (r: Partial<QuiesceReport>): QuiesceReport => ({
  tokenId: 't1',
  state: 'FROZEN',
  message: '',
  hooks: [],
  autoThawed: false,
  frozenMs: 0,
  holdMs: 0,
  ...r,
});

const hook = (name: string, ok = true): v1.HookResult__Output => ({ name, ok, message: '', durationMs: 5 });

describe('quiesce broker', () => {
  let clock: sinon.SinonFakeTimers;
  let sessions: FakeSessions;
  let recorded: QuiesceEvent[];
  let broker: QuiesceBroker;

  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: 1_000_000, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    sessions = new FakeSessions();
    recorded = [];
    broker = new QuiesceBroker({
      agents: sessions,
      record: async (e) => void recorded.push(e),
      lease: (tokenId) => (tokenId === 'restored' ? lease('restored') : undefined),
      clock: { now: () => Date.now() },
      log: createLogger({ level: 'silent' }),
      thawTimeoutMs: 5_000,
    });
  });
  afterEach(() => {
    broker.stop();
    clock.restore();
  });

  it("freezes through the VM's session, answers FROZEN with the hooks and bound, thaws on the word, and records both", async () => {
    const frozen = broker.quiesce(lease(), 2_000, 10_000);
    assert.deepEqual(sessions.sent, [{ vm: 'vm-1', action: { freeze: { tokenId: 't1', holdMs: 2_000 } } }]);
    assert.ok(broker.report('vm-1', report({ holdMs: 2_000, hooks: [hook('10-db'), hook('20-fs')] })));
    const answer = await frozen;
    assert.deepEqual(
      [answer.state, answer.holdMs, answer.hooks.map((h) => h.name)],
      ['FROZEN', 2_000, ['10-db', '20-fs']],
    );

    const thawing = broker.thaw(lease());
    assert.deepEqual(sessions.kinds(), ['freeze t1', 'thaw t1']);
    broker.report('vm-1', report({ state: 'THAWED', frozenMs: 40, hooks: [hook('20-fs'), hook('10-db')] }));
    const thawed = await thawing;
    assert.deepEqual([thawed.state, thawed.autoThawed, thawed.frozenMs], ['THAWED', false, 40]);
    assert.deepEqual(
      recorded.map((e) => e.type),
      ['quiesced', 'thawed'],
    );
    assert.deepEqual((recorded[0] as { hooks: string[] }).hooks, ['10-db', '20-fs']);
    assert.equal((recorded[0] as { holdMs: number }).holdMs, 2_000);
  });

  it('answers FAILED at once when the VM has no session, and records why', async () => {
    const answer = await broker.quiesce(lease('t2', 'vm-gone'), 0, 10_000);
    assert.equal(answer.state, 'FAILED');
    assert.match(answer.message, /agent of VM vm-gone is not connected/);
    assert.deepEqual(
      recorded.map((e) => [e.type, (e as { reason?: string }).reason]),
      [['quiesce-failed', answer.message]],
    );
  });

  it('passes on a failed hook as FAILED with the hooks', async () => {
    const frozen = broker.quiesce(lease(), 0, 10_000);
    broker.report(
      'vm-1',
      report({ state: 'FAILED', message: '20-fs exited 1', hooks: [hook('10-db'), hook('20-fs', false)] }),
    );
    const answer = await frozen;
    assert.equal(answer.state, 'FAILED');
    assert.match(answer.message, /could not quiesce: 20-fs exited 1/);
    assert.deepEqual(
      answer.hooks.map((h) => h.ok),
      [true, false],
    );
    assert.equal(recorded[0].type, 'quiesce-failed');
  });

  it('gives up after the timeout, answers FAILED and tells the agent to thaw; a late THAWED is still recorded', async () => {
    const frozen = broker.quiesce(lease(), 0, 3_000);
    await clock.tickAsync(3_000);
    const answer = await frozen;
    assert.equal(answer.state, 'FAILED');
    assert.match(answer.message, /no answer from the agent of VM vm-1 within 3s; it was told to thaw/);
    assert.deepEqual(sessions.kinds(), ['freeze t1', 'thaw t1']);
    broker.report('vm-1', report({ state: 'FROZEN', holdMs: 10_000 }));
    broker.report('vm-1', report({ state: 'THAWED', frozenMs: 12 }));
    await clock.tickAsync(0);
    assert.deepEqual(
      recorded.map((e) => e.type),
      ['quiesce-failed', 'quiesced', 'thawed'],
    );
  });

  it('ignores a report about a token the VM was not asked to freeze', async () => {
    const frozen = broker.quiesce(lease(), 0, 10_000);
    assert.equal(broker.report('vm-2', report({})), false, 'another VM speaking for t1');
    assert.equal(broker.report('vm-1', report({ tokenId: 'other' })), false);
    broker.report('vm-1', report({ holdMs: 10_000 }));
    assert.equal((await frozen).state, 'FROZEN');
  });

  it('records an unsolicited auto-thaw, and a later Thaw answers it without asking again', async () => {
    const frozen = broker.quiesce(lease(), 2_000, 10_000);
    broker.report('vm-1', report({ holdMs: 2_000 }));
    await frozen;
    broker.report('vm-1', report({ state: 'THAWED', autoThawed: true, frozenMs: 2_001 }));
    await clock.tickAsync(0);
    const thawed = await broker.thaw(lease());
    assert.deepEqual([thawed.state, thawed.autoThawed, thawed.frozenMs], ['THAWED', true, 2_001]);
    assert.deepEqual(sessions.kinds(), ['freeze t1']);
    const last = recorded.at(-1)!;
    assert.deepEqual([last.type, (last as { autoThawed: boolean }).autoThawed], ['thawed', true]);
  });

  it('repeats the FROZEN answer to a Quiesce asked again while frozen, without a second freeze', async () => {
    const first = broker.quiesce(lease(), 2_000, 10_000);
    broker.report('vm-1', report({ holdMs: 2_000 }));
    await first;
    const again = await broker.quiesce(lease(), 2_000, 10_000);
    assert.equal(again.state, 'FROZEN');
    assert.deepEqual(sessions.kinds(), ['freeze t1']);
  });

  it('thaws a guest whose token ends while it is frozen', async () => {
    const frozen = broker.quiesce(lease(), 2_000, 10_000);
    broker.report('vm-1', report({ holdMs: 2_000 }));
    await frozen;
    broker.onCommitted([{ type: 'expired', at: Date.now(), lease: lease() }]);
    assert.deepEqual(sessions.kinds(), ['freeze t1', 'thaw t1']);
    // The agent's answer is taken (the token is gone, not the freeze).
    assert.ok(broker.report('vm-1', report({ state: 'THAWED', frozenMs: 30 })));
    await clock.tickAsync(0);
    assert.equal(recorded.at(-1)!.type, 'thawed');
  });

  it('says whether the bound has passed when the agent is gone at thaw time', async () => {
    const frozen = broker.quiesce(lease(), 2_000, 10_000);
    broker.report('vm-1', report({ holdMs: 2_000 }));
    await frozen;
    sessions.connected.delete('vm-1');
    const early = await broker.thaw(lease());
    assert.deepEqual([early.state, early.autoThawed], ['FAILED', false]);
    assert.match(early.message, /not connected: it thaws by itself within 2s/);
    await clock.tickAsync(2_000);
    const late = await broker.thaw(lease());
    assert.deepEqual([late.state, late.autoThawed], ['FAILED', true]);
    assert.match(late.message, /its bound has passed/);
  });

  it("records an auto-thaw reported after a restart against the VM's active token, and nothing for another VM's", async () => {
    assert.equal(broker.report('vm-2', report({ tokenId: 'restored', state: 'THAWED', autoThawed: true })), false);
    assert.equal(broker.report('vm-1', report({ tokenId: 'restored', state: 'FROZEN' })), false);
    assert.ok(
      broker.report('vm-1', report({ tokenId: 'restored', state: 'THAWED', autoThawed: true, frozenMs: 2_000 })),
    );
    await clock.tickAsync(0);
    assert.deepEqual(
      recorded.map((e) => [e.type, e.lease.tokenId, (e as { autoThawed: boolean }).autoThawed]),
      [['thawed', 'restored', true]],
    );
  });

  it('refuses to thaw a token that was never quiesced', async () => {
    const answer = await broker.thaw(lease());
    assert.equal(answer.state, 'FAILED');
    assert.match(answer.message, /not quiesced/);
    assert.deepEqual(sessions.sent, []);
  });
});

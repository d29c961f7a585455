import { strict as assert } from 'node:assert';
import { createLogger } from '../../../../common/util/log';
import { autoThawReporter, quiesceCommand } from '../../../../agent/quiesce/quiesce-commands';
import {
  type FreezeResult,
  type Quiescer,
  type ThawResult,
  UnknownFreezeError,
} from '../../../../agent/quiesce/quiescer';
import type { v1 } from '../../../../proto';

const log = createLogger({ level: 'silent' });
const hook = (name: string, ok = true) => ({ name, ok, message: ok ? 'ok' : 'exit 1', durationMs: 3.6 });

function quiescer(freeze: FreezeResult, thaw: ThawResult | Error): Quiescer & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    frozenToken: undefined,
    async freeze(tokenId, holdMs) {
      calls.push(`freeze ${tokenId} ${holdMs}`);
      return freeze;
    },
    async thaw(tokenId) {
      calls.push(`thaw ${tokenId}`);
      if (thaw instanceof Error) throw thaw;
      return thaw;
    },
  };
}

const command = (c: Partial<v1.Command__Output>): v1.Command__Output =>
  ({ commandId: 'c1', action: c.freeze ? 'freeze' : 'thaw', ...c }) as v1.Command__Output;
const thawed: ThawResult = {
  ok: true,
  message: '',
  hooks: [hook('20-fs'), hook('10-db')],
  autoThawed: false,
  frozenMs: 41.7,
};

describe('quiesce commands', () => {
  it('answers a freeze with a FROZEN report carrying the hooks and the bound in force', async () => {
    const q = quiescer({ state: 'FROZEN', hooks: [hook('10-db'), hook('20-fs')], holdMs: 2_000 }, thawed);
    const r = await quiesceCommand(q, command({ freeze: { tokenId: 't1', holdMs: 0 } }), log);
    assert.deepEqual(q.calls, ['freeze t1 0']);
    assert.equal(r.ok, true);
    assert.deepEqual(r.quiesce, {
      tokenId: 't1',
      state: 'QUIESCE_STATE_FROZEN',
      holdMs: 2_000,
      hooks: [
        { name: '10-db', ok: true, message: 'ok', durationMs: 4 },
        { name: '20-fs', ok: true, message: 'ok', durationMs: 4 },
      ],
    });
  });

  it('answers a failed freeze with FAILED and the reason, and a failed ack', async () => {
    const q = quiescer(
      { state: 'FAILED', message: '20-bad: exit 1', hooks: [hook('10-db'), hook('20-bad', false)] },
      thawed,
    );
    const r = await quiesceCommand(q, command({ freeze: { tokenId: 't1', holdMs: 0 } }), log);
    assert.deepEqual(
      [r.ok, r.message, r.quiesce?.state, r.quiesce?.message],
      [false, '20-bad: exit 1', 'QUIESCE_STATE_FAILED', '20-bad: exit 1'],
    );
  });

  it('answers a thaw with THAWED (or FAILED when a thaw hook failed), frozen ms and auto_thawed', async () => {
    const ok = await quiesceCommand(
      quiescer({ state: 'FAILED', message: '', hooks: [] }, thawed),
      command({ thaw: { tokenId: 't1' } }),
      log,
    );
    assert.deepEqual(
      [ok.quiesce?.state, ok.quiesce?.frozenMs, ok.quiesce?.autoThawed],
      ['QUIESCE_STATE_THAWED', 42, false],
    );
    const bad = await quiesceCommand(
      quiescer({ state: 'FAILED', message: '', hooks: [] }, { ...thawed, ok: false, message: '10-db: exit 1' }),
      command({ thaw: { tokenId: 't1' } }),
      log,
    );
    assert.deepEqual(
      [bad.ok, bad.quiesce?.state, bad.quiesce?.message],
      [false, 'QUIESCE_STATE_FAILED', '10-db: exit 1'],
    );
  });

  it('answers a thaw of a token it never froze with FAILED naming it', async () => {
    const r = await quiesceCommand(
      quiescer({ state: 'FAILED', message: '', hooks: [] }, new UnknownFreezeError('t9')),
      command({ thaw: { tokenId: 't9' } }),
      log,
    );
    assert.deepEqual([r.ok, r.quiesce?.state], [false, 'QUIESCE_STATE_FAILED']);
    assert.match(r.quiesce!.message!, /t9/);
  });

  it('reports an auto-thaw as an unsolicited THAWED with auto_thawed', () => {
    const sent: v1.QuiesceReport[] = [];
    autoThawReporter((r) => sent.push(r), log)('t1', { ...thawed, autoThawed: true, frozenMs: 2_000 });
    assert.deepEqual(
      sent.map((r) => [r.tokenId, r.state, r.autoThawed, r.frozenMs]),
      [['t1', 'QUIESCE_STATE_THAWED', true, 2_000]],
    );
  });
});

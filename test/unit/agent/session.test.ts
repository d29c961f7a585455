import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import * as sinon from 'sinon';
import type { v1 } from '../../../proto';
import type { AgentClient } from '../../../common/client/connection';
import { AgentSession } from '../../../agent/session';
import type { LoadCollector } from '../../../common/backup-run/load-collector';
import { captureLog, grpcError } from '../common/backup-run/guarded-run-fakes';
import type { ConnectionContext } from '../../../common/client/tls-diagnosis';

const T0 = Date.UTC(2026, 0, 5, 2, 0, 0);

class FakeSessionCall extends EventEmitter {
  readonly written: v1.AgentMessage[] = [];
  ended = false;
  cancelled = false;
  write(msg: v1.AgentMessage): boolean {
    this.written.push(msg);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
  }
  settings(s: Partial<v1.SessionSettings__Output>): void {
    this.emit('data', {
      body: 'settings',
      settings: { host: 'host-a', vm: 'vm-1', reportIntervalMs: 0, leaseTtlMs: 30_000, ...s },
    });
  }
  command(c: v1.Command__Output): void {
    this.emit('data', { body: 'command', command: c });
  }
  fail(code = grpc.status.UNAVAILABLE, details = 'connection dropped'): void {
    this.emit('error', grpcError(code, details));
  }
}

class FakeAgentClient {
  readonly calls: FakeSessionCall[] = [];
  Session(): FakeSessionCall {
    const c = new FakeSessionCall();
    this.calls.push(c);
    return c;
  }
}

const collector: LoadCollector = {
  sample: async () => ({ sampledUnixMs: Date.now(), cpuPercent: 12.5 }),
};

describe('AgentSession', () => {
  let clock: sinon.SinonFakeTimers;
  let session: AgentSession | undefined;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    session?.stop();
    session = undefined;
    clock.restore();
  });

  function start(
    onCommand = (_c: v1.Command__Output) => ({ ok: true, message: 'done' }),
    budgetReports?: () => v1.BudgetReport[],
    connection?: ConnectionContext,
  ) {
    const client = new FakeAgentClient();
    const logs = captureLog();
    const settings: v1.SessionSettings__Output[] = [];
    session = new AgentSession({
      client: client as unknown as AgentClient,
      hello: () => ({ vm: 'vm-1', host: '', agentVersion: '0.1.0', hostname: 'guest', jobs: [] }),
      collector,
      log: logs.log,
      onSettings: (s) => settings.push(s),
      onCommand,
      budgetReports,
      backoff: { random: () => 0.5 },
      connection,
    });
    session.start();
    return { client, logs, settings };
  }

  it('says hello first, then reports load every 10 s until the coordinator sets another interval', async () => {
    const { client, settings } = start();
    const call = client.calls[0];
    assert.deepEqual(
      [...call.written],
      [{ hello: { vm: 'vm-1', host: '', agentVersion: '0.1.0', hostname: 'guest', jobs: [] } }],
    );
    await clock.tickAsync(10_000);
    assert.equal(call.written.length, 2);
    assert.deepEqual(call.written[1], { load: { sampledUnixMs: T0 + 10_000, cpuPercent: 12.5 } });
    call.settings({ reportIntervalMs: 2_000, host: 'host-z' });
    assert.equal(settings[0].host, 'host-z');
    assert.equal(session!.settings?.host, 'host-z');
    assert.equal(session!.connected, true);
    await clock.tickAsync(6_000);
    assert.equal(call.written.filter((m) => m.load).length, 4);
  });

  it('acknowledges each command with what the handler answered', async () => {
    const seen: string[] = [];
    const { client } = start((c) => {
      seen.push(c.commandId);
      return { ok: c.commandId === 'a', message: `handled ${c.commandId}` };
    });
    const call = client.calls[0];
    call.command({ commandId: 'a', action: 'revoke', revoke: { tokenId: 't', fencing: 1, reason: '' } });
    call.command({
      commandId: 'b',
      action: 'budget',
      budget: { tokenId: 't', budget: null, paused: false, reason: '' },
    });
    await clock.tickAsync(0);
    assert.deepEqual(seen, ['a', 'b']);
    assert.deepEqual(call.written.slice(1), [
      { ack: { commandId: 'a', ok: true, message: 'handled a' } },
      { ack: { commandId: 'b', ok: false, message: 'handled b' } },
    ]);
  });

  it('sends budget reports as they come, and after every hello those of the backups running then', async () => {
    const report = (tokenId: string, paused: boolean): v1.BudgetReport => ({
      tokenId,
      budget: { ioBytesPerSec: 0, cpuPercent: 20 },
      paused,
      enforcement: 'ENFORCEMENT_CGROUP_V1',
      detail: 'x',
    });
    let running: v1.BudgetReport[] = [];
    const { client } = start(undefined, () => running);
    assert.deepEqual(client.calls[0].written.length, 1, 'nothing runs: the hello alone');
    session!.reportBudget(report('t1', false));
    session!.reportBudget(report('t1', true));
    assert.deepEqual(client.calls[0].written.slice(1), [
      { budget: report('t1', false) },
      { budget: report('t1', true) },
    ]);
    running = [report('t1', true)];
    client.calls[0].fail();
    await clock.tickAsync(1_000);
    const again = client.calls[1].written;
    assert.ok(again[0].hello);
    assert.deepEqual(again.slice(1), [{ budget: report('t1', true) }]);
  });

  it("sends a freeze or thaw command's QuiesceReport before its ack", async () => {
    const quiesce: v1.QuiesceReport = {
      tokenId: 't',
      state: 'QUIESCE_STATE_FROZEN',
      holdMs: 2_000,
      hooks: [{ name: '10-db', ok: true, message: '', durationMs: 3 }],
    };
    const { client } = start(() => ({ ok: true, message: 'frozen', quiesce }));
    const call = client.calls[0];
    call.command({ commandId: 'f', action: 'freeze', freeze: { tokenId: 't', holdMs: 2_000 } });
    await clock.tickAsync(0);
    assert.deepEqual(call.written.slice(1), [{ quiesce }, { ack: { commandId: 'f', ok: true, message: 'frozen' } }]);
  });

  it('keeps an auto-thaw report made while disconnected, and sends it once the next session is up', async () => {
    const { client } = start();
    client.calls[0].settings({});
    const thawed: v1.QuiesceReport = { tokenId: 't', state: 'QUIESCE_STATE_THAWED', autoThawed: true, frozenMs: 2_000 };
    session!.reportQuiesce(thawed);
    assert.deepEqual(client.calls[0].written.at(-1), { quiesce: thawed }, 'sent at once while up');
    client.calls[0].fail();
    session!.reportQuiesce({ ...thawed, tokenId: 'u' });
    await clock.tickAsync(1_000);
    const next = client.calls[1];
    assert.ok(!next.written.some((m) => m.quiesce), 'not before the coordinator answered the hello');
    next.settings({});
    assert.deepEqual(
      next.written.filter((m) => m.quiesce),
      [{ quiesce: { ...thawed, tokenId: 'u' } }],
    );
  });

  it('reconnects with exponential backoff, logging the outage once as a warning and each attempt with the wait until the next', async () => {
    const { client, logs } = start();
    client.calls[0].settings({});
    client.calls[0].fail();
    for (let i = 0; i < 4; i++) {
      await clock.tickAsync(30_000);
      // What grpc-js says when nothing listens: its empty "Resolution note" is not for people.
      client.calls[client.calls.length - 1].fail(
        grpc.status.UNAVAILABLE,
        'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7499. Resolution note: ',
      );
    }
    // 1 s, 2 s, 4 s, 8 s, 16 s ... the attempts counted as reconnections:
    assert.ok(client.calls.length >= 4, `${client.calls.length} attempts`);
    const warnings = logs.lines.filter((l) => l.level === 'warn');
    assert.deepEqual(
      warnings.map((l) => l.msg),
      ['session lost; reconnecting in the background'],
      'one warning for the loss, none per retry',
    );
    const retries = logs.lines.filter((l) => l.msg === 'reconnect failed; trying again');
    assert.equal(retries.length, client.calls.length - 1, 'every failed attempt after the loss, at info');
    assert.ok(
      retries.every((l) => /^\d+(\.\d+)?s$/.test(String(l.retryIn))),
      JSON.stringify(retries),
    );
    assert.ok(
      retries.every((l) => String(l.error).endsWith('ECONNREFUSED 127.0.0.1:7499')),
      JSON.stringify(retries),
    );
    const failed = client.calls.length;
    await clock.tickAsync(30_000);
    assert.equal(client.calls.length, failed + 1);
    const last = client.calls[client.calls.length - 1];
    assert.ok(last.written[0].hello, 'hello first on the new stream');
    last.settings({});
    assert.equal(logs.lines.filter((l) => l.msg === 'session up').length, 2);
  });

  it('spaces reconnection attempts 1 s, 2 s, 4 s … apart', async () => {
    const { client } = start();
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const n = client.calls.length;
      client.calls[n - 1].fail();
      while (client.calls.length === n) await clock.tickAsync(100);
      times.push(Date.now() - T0);
    }
    const gaps = times.map((t, i) => t - (i === 0 ? 0 : times[i - 1]));
    assert.deepEqual(gaps, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
  });

  it('logs a refusal no retry cures once, with its fix, then retries every minute and says it again every 10 minutes', async () => {
    const names = { ca: 'tls.caFile', clientCertificate: 'tls.certFile and tls.keyFile', address: 'coordinator' };
    const { client, logs } = start(undefined, undefined, { address: 'localhost:7400', tls: true, names });
    const refuse = () =>
      client.calls[client.calls.length - 1].emit(
        'error',
        grpcError(grpc.status.UNAUTHENTICATED, "a client certificate issued by this coordinator's CA is required"),
      );
    refuse();
    for (let minute = 1; minute <= 10; minute++) {
      const n = client.calls.length;
      await clock.tickAsync(59_999);
      assert.equal(client.calls.length, n, 'no retry before a minute has passed');
      await clock.tickAsync(1);
      assert.equal(client.calls.length, n + 1);
      refuse();
    }
    const errors = logs.lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 2, 'the first refusal and, ten retries later, one reminder');
    assert.match(
      String(errors[0].msg),
      /the coordinator refuses this agent, and will until a setting changes; trying again every 1m/,
    );
    assert.match(
      String(errors[0].error),
      /CA is required; give a client certificate .*: tls\.certFile and tls\.keyFile/,
    );
    assert.equal(logs.lines.filter((l) => l.level === 'warn').length, 0, 'not called unreachable');
  });

  it('stops reconnecting once stopped', async () => {
    const { client } = start();
    session!.stop();
    assert.equal(client.calls[0].cancelled, true);
    await clock.tickAsync(120_000);
    assert.equal(client.calls.length, 1);
  });
});

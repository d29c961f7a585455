import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as sinon from 'sinon';
import { GuardedRunOptions, GuardedRunResult, runGuarded, StopReason } from '../../../../common/backup-run/guarded-run';
import { EXIT_CONFIG, EXIT_TEMPFAIL } from '../../../../common/util/exit-codes';
import { captureLog, FakeTokenClient, fakeSpawner, grpcError, token } from './guarded-run-fakes';
import { FakeProc } from './budget/fake-proc';
import { BYTES_FILE_ENV } from '../../../../common/backup-run/reported-bytes';

const T0 = Date.UTC(2026, 0, 5, 2, 0, 0);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('runGuarded', () => {
  let clock: sinon.SinonFakeTimers;
  let client: FakeTokenClient;
  let spawner: ReturnType<typeof fakeSpawner>;
  let logs: ReturnType<typeof captureLog>;

  beforeEach(() => {
    clock = sinon.useFakeTimers({
      now: T0,
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
    });
    client = new FakeTokenClient();
    spawner = fakeSpawner();
    logs = captureLog();
  });
  afterEach(() => clock.restore());

  function start(overrides: Partial<GuardedRunOptions> = {}): Promise<GuardedRunResult> {
    return runGuarded({
      client: client.asClient(),
      request: {
        kind: 'TOKEN_KIND_GUEST',
        host: 'host-a',
        vm: 'vm-1',
        job: 'nightly',
        expectedDurationMs: 60_000,
        latestStartUnixMs: T0 + 3_600_000,
        windowEndUnixMs: T0 + 3_600_000,
      },
      argv: ['restic', 'backup', '/data'],
      log: logs.log,
      clock: { now: () => Date.now() },
      spawn: spawner.spawn,
      proc: new FakeProc(),
      killGraceMs: 10_000,
      backoff: { random: () => 0.5 },
      ...overrides,
    });
  }

  /** Lets promise callbacks and nextTicks run without moving time. */
  const settle = () => clock.tickAsync(0);

  it('acquires with a fresh request id, renews every TTL/3 while the command runs, and releases with the outcome', async () => {
    const hooks = { granted: 0, started: 0 };
    const done = start({ hooks: { onGranted: () => hooks.granted++, onStarted: () => hooks.started++ } });
    await settle();
    assert.equal(client.acquires.length, 1);
    const req = client.acquires[0].request;
    assert.match(req.requestId!, UUID);
    assert.equal(req.kind, 'TOKEN_KIND_GUEST');
    assert.equal(req.latestStartUnixMs, T0 + 3_600_000);
    assert.deepEqual(spawner.children[0].argv, ['restic', 'backup', '/data']);
    assert.deepEqual(hooks, { granted: 1, started: 1 });
    const env = spawner.children[0].options.env!;
    assert.deepEqual(
      [env.HEADROOM_TOKEN_ID, env.HEADROOM_FENCING, env.HEADROOM_KIND],
      ['tok-1', '7', 'GUEST'],
      'the command knows its token',
    );
    assert.equal(env.PATH, process.env.PATH, 'on top of our environment');
    assert.equal(spawner.children[0].options.killGraceMs, 10_000, 'the watchdog gets the kill grace');

    await clock.tickAsync(35_000);
    assert.deepEqual(
      client.renews.map((r) => r.at - T0),
      [10_000, 20_000, 30_000],
    );
    assert.deepEqual(client.renews[0].request, { tokenId: 'tok-1', fencing: 7 });
    assert.ok(
      client.renews.every((r) => r.deadline - r.at <= 10_000),
      'every renewal has a deadline',
    );

    spawner.children[0].exit(0);
    const result = await done;
    assert.equal(result.status, 'succeeded');
    assert.equal(result.exitCode, 0);
    assert.equal(result.token?.tokenId, 'tok-1');
    assert.equal(client.releases.length, 1);
    assert.deepEqual(client.releases[0].request, {
      tokenId: 'tok-1',
      fencing: 7,
      // No I/O accounting to read in this fake /proc: the bytes are unknown, so unset.
      outcome: { success: true, durationMs: 35_000, exitCode: 0, message: 'exit code 0' },
    });

    const second = start();
    await settle();
    spawner.children[1].exit(0);
    await second;
    assert.notEqual(client.acquires[1].request.requestId, req.requestId, 'each run has its own request id');
  });

  it("returns the command's own exit code when it fails, and releases with success false", async () => {
    const done = start();
    await settle();
    spawner.children[0].exit(3);
    const result = await done;
    assert.deepEqual([result.status, result.exitCode], ['failed', 3]);
    assert.equal(client.releases[0].request.outcome!.success, false);
    assert.equal(client.releases[0].request.outcome!.exitCode, 3);
  });

  it("releases with the bytes the command's tree wrote, from the kernel's I/O accounting", async () => {
    const proc = new FakeProc().set(process.pid, { pgrp: process.pid, written: 10_000 });
    const done = start({ proc });
    await settle();
    const child = spawner.children[0];
    proc.set(child.pid, { pgrp: child.pid, ppid: process.pid, written: 40_000 });
    await clock.tickAsync(1_000);
    // It wrote 30000 more and was reaped by us: its last counters were added to ours.
    proc.processes.delete(child.pid);
    proc.set(process.pid, { pgrp: process.pid, written: 10_000 + 70_000 });
    child.exit(0);
    await done;
    assert.equal(client.releases[0].request.outcome!.bytes, 70_000);
  });

  it('releases with the figure the command wrote into HEADROOM_BYTES_FILE, over what the kernel saw', async () => {
    const done = start();
    await settle();
    const child = spawner.children[0];
    fs.writeFileSync(child.options.env![BYTES_FILE_ENV]!, '123456\n');
    child.exit(0);
    await done;
    assert.equal(client.releases[0].request.outcome!.bytes, 123_456);
    assert.equal(fs.existsSync(child.options.env![BYTES_FILE_ENV]!), false, 'the file is removed');
  });

  it('releases with 0 bytes when the command did not start: nothing ran', async () => {
    const bracket = { before: async () => 'the guest could not be frozen', after: async () => ({}) };
    const result = await start({ bracket });
    assert.equal(result.status, 'failed');
    assert.equal(spawner.children.length, 0);
    assert.equal(client.releases[0]?.request.outcome!.bytes, 0);
  });

  for (const code of [grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND]) {
    it(`stops the command when renewal is refused with ${grpc.status[code]}, exits 75 and does not release`, async () => {
      client.renewAnswer = () => ({ error: grpcError(code, 'stale fencing token') });
      const stopping: string[] = [];
      const done = start({ hooks: { onStopping: (why) => stopping.push(why) } });
      await clock.tickAsync(10_000);
      const child = spawner.children[0];
      assert.deepEqual(
        child.stops.map((s) => [s.at - T0, s.graceMs]),
        [[10_000, 10_000]],
      );
      const result = await done;
      assert.equal(result.status, 'lease-lost');
      assert.equal(result.exitCode, EXIT_TEMPFAIL);
      assert.match(
        result.message,
        /lease lost: the coordinator refused renewal \(stale fencing token\); command stopped \(killed by SIGTERM\)/,
      );
      assert.equal(stopping.length, 1);
      assert.equal(client.releases.length, 0);
    });
  }

  it('fail-safe: stops the command before the lease would expire when renewals cannot get through', async () => {
    client.renewAnswer = () => ({ error: grpcError(grpc.status.UNAVAILABLE, 'connect ECONNREFUSED') });
    const done = start();
    await clock.tickAsync(24_999);
    const child = spawner.children[0];
    assert.equal(child.stops.length, 0, 'still running 1 ms before the fail-safe deadline');
    assert.ok(client.renews.length >= 4, `retried renewals: ${client.renews.map((r) => r.at - T0)}`);
    await clock.tickAsync(1);
    assert.deepEqual(
      child.stops.map((s) => s.at - T0),
      [25_000],
      'stopped at expiry (30 s) minus the margin (5 s)',
    );
    const result = await done;
    assert.equal(result.status, 'lease-lost');
    assert.equal(result.exitCode, EXIT_TEMPFAIL);
    assert.match(result.message, /could not renew the lease; stopped 5s before it would expire/);
    const renewsAtStop = client.renews.length;
    await clock.tickAsync(60_000);
    assert.equal(client.renews.length, renewsAtStop, 'no renewal after the stop');
    assert.ok(client.releases.length >= 1, 'tries to release: the coordinator may be back');
  });

  it('fail-safe fires on time even when renewals hang until their deadline', async () => {
    client.renewAnswer = () => 'hang';
    const done = start();
    await clock.tickAsync(25_000);
    assert.deepEqual(
      spawner.children[0].stops.map((s) => s.at - T0),
      [25_000],
    );
    assert.equal((await done).status, 'lease-lost');
  });

  it('keeps the command running when a failed renewal is retried in time, and measures the lease from that renewal', async () => {
    client.renewAnswer = (n) =>
      n === 1
        ? { error: grpcError(grpc.status.UNAVAILABLE) }
        : { response: { expiresUnixMs: 0, ttlMs: 30_000, budget: null } };
    const done = start();
    await clock.tickAsync(31_000);
    assert.deepEqual(
      client.renews.map((r) => r.at - T0),
      [10_000, 10_500, 20_500, 30_500],
    );
    assert.equal(spawner.children[0].stops.length, 0);
    spawner.children[0].exit(0);
    assert.equal((await done).status, 'succeeded');
    const warned = logs.lines.filter((l) => l.msg === 'lease renewal failed; retrying until the fail-safe deadline');
    assert.equal(warned.length, 1);
  });

  it('follows a TTL changed by the coordinator in a renewal', async () => {
    client.renewAnswer = () => ({ response: { expiresUnixMs: 0, ttlMs: 6_000, budget: null } });
    const done = start();
    await clock.tickAsync(14_000);
    assert.deepEqual(
      client.renews.map((r) => r.at - T0),
      [10_000, 12_000, 14_000],
    );
    spawner.children[0].exit(0);
    await done;
  });

  it('stops the command when the token is revoked, and does not release the void token', async () => {
    const controller = new AbortController();
    const done = start({ signal: controller.signal });
    await clock.tickAsync(3_000);
    controller.abort({ kind: 'revoke', reason: 'operator revoked' } satisfies StopReason);
    await settle();
    assert.deepEqual(
      spawner.children[0].stops.map((s) => s.at - T0),
      [3_000],
    );
    const result = await done;
    assert.equal(result.status, 'revoked');
    assert.equal(result.exitCode, EXIT_TEMPFAIL);
    assert.match(result.message, /token revoked by the coordinator: operator revoked/);
    assert.equal(client.releases.length, 0);
  });

  it("forwards a signal to the command's group, and exits with the command's code after releasing", async () => {
    const controller = new AbortController();
    const done = start({ signal: controller.signal });
    await settle();
    const child = spawner.children[0];
    child.onSignal = (s) => s === 'SIGINT' && child.exit(130);
    controller.abort({ kind: 'signal', signal: 'SIGINT' } satisfies StopReason);
    const result = await done;
    assert.deepEqual(
      child.signals.map((s) => s.signal),
      ['SIGINT'],
    );
    assert.equal(child.stops.length, 0);
    assert.deepEqual([result.status, result.exitCode], ['cancelled', 130]);
    assert.equal(client.releases[0].request.outcome!.exitCode, 130);
    assert.equal(client.releases[0].request.outcome!.success, false);
  });

  it('kills a command that ignores a forwarded signal after the grace period', async () => {
    const controller = new AbortController();
    const done = start({ signal: controller.signal, killGraceMs: 4_000 });
    await settle();
    controller.abort({ kind: 'signal', signal: 'SIGTERM' } satisfies StopReason);
    await clock.tickAsync(3_999);
    assert.equal(spawner.children[0].stops.length, 0);
    await clock.tickAsync(1);
    assert.deepEqual(
      spawner.children[0].stops.map((s) => s.at - T0),
      [4_000],
    );
    assert.equal((await done).status, 'cancelled');
  });

  it('does not start the command when denied, and exits 75 with the reason', async () => {
    client.onAcquire = (call) => call.deny('DENY_REASON_WINDOW_CLOSED', 'the window closed at 03:00');
    const denied: string[] = [];
    const result = await start({ hooks: { onDenied: (d) => denied.push(d.reason) } });
    assert.deepEqual([result.status, result.exitCode], ['denied', EXIT_TEMPFAIL]);
    assert.match(result.message, /the window closed at 03:00/);
    assert.deepEqual(denied, ['DENY_REASON_WINDOW_CLOSED']);
    assert.equal(spawner.children.length, 0);
  });

  it('refuses at once when the coordinator rejects the request itself', async () => {
    client.onAcquire = (call) => call.fail(grpc.status.INVALID_ARGUMENT, 'vm: required');
    const result = await start();
    assert.deepEqual([result.status, result.exitCode], ['denied', EXIT_TEMPFAIL]);
    assert.match(result.message, /vm: required/);
    assert.equal(client.acquires.length, 1);
  });

  it('retries with the same request id when the coordinator is stopping', async () => {
    client.onAcquire = (call, n) =>
      n === 1 ? call.deny('DENY_REASON_COORDINATOR_STOPPING', 'restart') : call.grant(token());
    const done = start();
    await clock.tickAsync(1_000);
    assert.equal(client.acquires.length, 2);
    assert.equal(client.acquires[1].request.requestId, client.acquires[0].request.requestId);
    spawner.children[0].exit(0);
    assert.equal((await done).status, 'succeeded');
  });

  it('passes queue progress to the hooks while it waits', async () => {
    client.onAcquire = (call) => {
      call.queued(2, 'hypervisor backup of vm-7');
      call.queued(1, 'hypervisor backup of vm-7');
      setTimeout(() => call.grant(token()), 60_000);
    };
    const positions: number[] = [];
    const done = start({ hooks: { onQueued: (q) => positions.push(q.position) } });
    await clock.tickAsync(60_000);
    assert.deepEqual(positions, [2, 1]);
    spawner.children[0].exit(0);
    await done;
  });

  it('resumes with the same request id when the stream breaks while queued', async () => {
    client.onAcquire = (call, n) => {
      if (n === 1) {
        call.queued(1);
        call.fail(grpc.status.UNAVAILABLE, 'connection reset');
      } else call.grant(token());
    };
    const done = start();
    await clock.tickAsync(1_000);
    assert.equal(client.acquires.length, 2);
    assert.equal(client.acquires[1].request.requestId, client.acquires[0].request.requestId);
    spawner.children[0].exit(0);
    assert.equal((await done).status, 'succeeded');
  });

  it('when the coordinator is unreachable, retries with backoff until the latest start and then skips (75)', async () => {
    client.onAcquire = (call) => call.fail(grpc.status.UNAVAILABLE, 'connect ECONNREFUSED');
    const unreachable: number[] = [];
    const done = start({
      request: {
        kind: 'TOKEN_KIND_GUEST',
        vm: 'vm-1',
        job: 'nightly',
        latestStartUnixMs: T0 + 10_000,
        windowEndUnixMs: T0 + 10_000,
      },
      hooks: { onUnreachable: (i) => unreachable.push(i.retryInMs) },
    });
    let result: GuardedRunResult | undefined;
    void done.then((r) => (result = r));
    await clock.tickAsync(9_999);
    assert.equal(result, undefined, 'still trying before the window closes');
    await clock.tickAsync(1);
    await settle();
    const r = result as GuardedRunResult | undefined;
    assert.ok(r);
    assert.deepEqual([r.status, r.exitCode], ['skipped', EXIT_TEMPFAIL]);
    assert.match(
      r.message,
      /skipped: could not get a GUEST token for nightly before its window closed at (2026-01-05 )?\d\d:\d\d:\d\d \(connect ECONNREFUSED\)/,
    );
    assert.deepEqual(unreachable, [1_000, 2_000, 4_000, 3_000]);
    assert.equal(client.acquires.length, 5);
    assert.equal(new Set(client.acquires.map((c) => c.request.requestId)).size, 1, 'one request id for all attempts');
    assert.equal(spawner.children.length, 0);
    assert.equal(logs.lines.filter((l) => l.level === 'warn').length, 1, 'the outage is logged once');
  });

  it('gives up at once with 78 (misconfigured) when the TLS failure is one no retry cures, naming the setting', async () => {
    client.onAcquire = (call) =>
      call.fail(
        grpc.status.UNAVAILABLE,
        "No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: guest-host. is not in the cert's altnames: DNS:pve-1",
      );
    const names = { ca: 'tls.caFile', clientCertificate: 'tls.certFile', address: 'coordinator in agent.yaml' };
    const r = await start({
      request: { kind: 'TOKEN_KIND_GUEST', vm: 'vm-1', job: 'nightly', latestStartUnixMs: T0 + 60_000 },
      connection: { address: 'guest-host:7400', tls: true, names },
    });
    assert.deepEqual([r.status, r.exitCode], ['misconfigured', EXIT_CONFIG]);
    assert.match(
      r.message,
      /^cannot get a GUEST token for nightly: the coordinator's certificate does not name guest-host:7400 \(ERR_TLS_CERT_ALTNAME_INVALID: .*\); connect by a name or address the certificate carries \(coordinator in agent\.yaml\)/,
    );
    assert.equal(client.acquires.length, 1, 'not retried until the window closes');
    assert.equal(spawner.children.length, 0);
  });

  it('with onUnreachable run, runs the command without a token after the first failed attempt', async () => {
    client.onAcquire = (call) => call.fail(grpc.status.UNAVAILABLE, 'connect ECONNREFUSED');
    const done = start({
      onUnreachable: 'run',
      env: { PATH: '/bin', HEADROOM_TOKEN_ID: 'inherited', HEADROOM_FENCING: '3' },
    });
    await settle();
    assert.equal(client.acquires.length, 1);
    assert.deepEqual(spawner.children[0].options.env, { PATH: '/bin' }, 'no token, and none inherited');
    spawner.children[0].exit(0);
    const result = await done;
    assert.equal(result.status, 'succeeded');
    assert.equal(result.ranWithoutToken, true);
    assert.equal(result.token, undefined);
    assert.match(result.message, /ran without a token \(coordinator unreachable\)/);
    assert.equal(client.renews.length + client.releases.length, 0);
  });

  it('cancels the acquire stream (withdrawing the request) when aborted while waiting', async () => {
    client.onAcquire = (call) => call.queued(3);
    const controller = new AbortController();
    const done = start({ signal: controller.signal });
    await clock.tickAsync(5_000);
    controller.abort({ kind: 'signal', signal: 'SIGINT' } satisfies StopReason);
    const result = await done;
    assert.equal(client.acquires[0].cancelled, true);
    assert.deepEqual([result.status, result.exitCode], ['cancelled', 130]);
    assert.equal(spawner.children.length, 0);
    await clock.tickAsync(60_000);
    assert.equal(client.acquires.length, 1, 'no retry after a cancel');
  });

  it('cancels the wait between retries when aborted', async () => {
    client.onAcquire = (call) => call.fail(grpc.status.UNAVAILABLE);
    const controller = new AbortController();
    const done = start({ signal: controller.signal });
    await clock.tickAsync(500);
    controller.abort({ kind: 'shutdown', reason: 'agent stopping' } satisfies StopReason);
    const result = await done;
    assert.deepEqual([result.status, result.exitCode], ['cancelled', EXIT_TEMPFAIL]);
    assert.equal(client.acquires.length, 1);
  });

  it('releases without starting when aborted between the grant and the start', async () => {
    const controller = new AbortController();
    const done = start({
      signal: controller.signal,
      hooks: { onGranted: () => controller.abort({ kind: 'shutdown', reason: 'stopping' } satisfies StopReason) },
    });
    const result = await done;
    assert.equal(result.status, 'cancelled');
    assert.equal(spawner.children.length, 0);
    assert.equal(client.releases.length, 1);
    assert.equal(result.durationMs, undefined);
  });

  it('runs the bracket around the command: its consistency goes into the release, its failure fails a succeeded run', async () => {
    const steps: string[] = [];
    const done = start({
      bracket: {
        before: async (t) => void steps.push(`before ${t.tokenId}`),
        after: async () => {
          steps.push('after');
          return { consistency: 'CONSISTENCY_CRASH', failure: 'the snapshot is only crash-consistent' };
        },
      },
    });
    await settle();
    assert.deepEqual(steps, ['before tok-1']);
    spawner.children[0].exit(0);
    const result = await done;
    assert.deepEqual(steps, ['before tok-1', 'after']);
    assert.deepEqual([result.status, result.exitCode], ['failed', 1]);
    assert.match(result.message, /exit code 0, but the snapshot is only crash-consistent/);
    const outcome = client.releases[0].request.outcome!;
    assert.deepEqual([outcome.success, outcome.consistency], [false, 'CONSISTENCY_CRASH']);
  });

  it('does not start the command when the bracket refuses, exits 1 and releases with the reason', async () => {
    const result = await start({
      bracket: { before: async () => 'guest not quiesced', after: async () => ({ consistency: 'CONSISTENCY_CRASH' }) },
    });
    assert.equal(spawner.children.length, 0);
    assert.deepEqual([result.status, result.exitCode], ['failed', 1]);
    const outcome = client.releases[0].request.outcome!;
    assert.equal(outcome.success, false);
    assert.equal(outcome.message, 'guest not quiesced; command not started');
  });
});

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_POLICY } from '../../../coordinator/domain/policy';
import { tempDir } from '../../helpers/coordinator-process';
import type { Token__Output } from '../../../proto/generated/headroom/v1';
import { acquire, closedPort, coordinatorPerTest, killAll, release, renew, runCtl, spawnCtl } from './ctl-process';

/** A command that writes the time it ran (Unix ms) into FILE. */
const stampCommand = (file: string) => [
  process.execPath,
  '-e',
  "require('fs').writeFileSync(process.argv[1], String(Date.now()))",
  file,
];

describe('headroomctl against a real coordinator', function () {
  this.timeout(30_000);

  const suite = coordinatorPerTest({ host: 'host-a', defaultStartPolicy: true });
  const ctl = (...args: string[]) => runCtl(['--coordinator', suite.coordinator.address, ...args]);

  it('shows hosts, tokens and history after tokens were taken, as tables and as JSON', async () => {
    const guest = await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' });
    const other = await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-2', job: 'pg_dump' });
    await release(suite.clients, other);

    const status = await ctl('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      /^HOST\s+STATE\s+GUEST\s+HYPERVISOR\s+QUEUED\s+AGENTS\s+FENCING\s+HOST CPU\s+HOST PSI IO\/CPU\/MEM\s+HOST AWAIT\s+HOST SIGNAL\s+POLICY\n/,
    );
    // The host's own load: dashes until the coordinator's first sample of it.
    assert.match(
      status.stdout,
      /\nhost-a\s+active\s+1\/4\s+0\/1\s+0\s+0\s+2\s+.+\s+ttl 30s, overrun no, reports every 10s\n/,
    );
    const statusJson = JSON.parse((await ctl('status', '--json')).stdout);
    assert.equal(statusJson.hosts.length, 1);
    assert.equal(statusJson.hosts[0].host, 'host-a');
    assert.equal(statusJson.hosts[0].activeGuest, 1);
    assert.equal(statusJson.hosts[0].fencing, 2);

    const tokens = await ctl('tokens');
    assert.equal(tokens.code, 0, tokens.stderr);
    assert.match(
      tokens.stdout,
      new RegExp(
        `\\n${guest.tokenId.slice(0, 8)}\\s+GUEST\\s+host-a\\s+vm-1\\s+restic\\s+1\\s+\\d\\d:\\d\\d:\\d\\d → \\d\\d:\\d\\d:\\d\\d\\s+-\\s+in \\d+s\\n`,
      ),
    );
    assert.match(tokens.stdout, /Queued requests\nno queued requests\n$/);
    const tokensJson = JSON.parse((await ctl('tokens', '--json')).stdout);
    assert.deepEqual(
      tokensJson.active.map((t: Token__Output) => t.tokenId),
      [guest.tokenId],
    );
    assert.deepEqual(tokensJson.queued, []);

    const history = await ctl('history');
    assert.equal(history.code, 0, history.stderr);
    const lines = history.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^TIME\s+TYPE\s+HOST\s+VM\s+JOB\s+KIND\s+TOKEN\s+FENCING\s+DETAIL$/);
    // TIME is a date and a time: the type is the third word.
    const types = lines.slice(1).map((l) => l.split(/\s+/)[2]);
    assert.deepEqual(
      types.filter((t) => t !== 'POLICY_CHANGED'),
      ['GRANTED', 'GRANTED', 'RELEASED'],
      history.stdout,
    );
    const historyJson = JSON.parse((await ctl('history', '--json', '--vm', 'vm-2')).stdout);
    assert.deepEqual(
      historyJson.events.map((e: { type: string }) => e.type),
      ['HISTORY_EVENT_TYPE_GRANTED', 'HISTORY_EVENT_TYPE_RELEASED'],
    );
    assert.ok(
      historyJson.events.every((e: { vm: string; tokenId: string }) => e.vm === 'vm-2' && e.tokenId === other.tokenId),
    );
    assert.equal((await ctl('history', '--vm', 'vm-none')).stdout, 'no events\n');
    const unknownHost = await ctl('history', '--host', 'host-zz');
    assert.equal(unknownHost.code, 1);
    assert.match(unknownHost.stderr, /^headroomctl: ListHistory: NOT_FOUND: .*host-zz/m);
  });

  it('warns on stderr that it talks plaintext on loopback, keeping stdout clean', async () => {
    const r = await ctl('status', '--json');
    assert.match(r.stderr, /headroomctl: warning: connecting without TLS \(allowed on loopback only\)/);
    assert.doesNotThrow(() => JSON.parse(r.stdout));
  });

  it('lists agents, and says so when there are none', async () => {
    const r = await ctl('agents');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'no agents\n');
    assert.deepEqual(JSON.parse((await ctl('agents', '--json')).stdout), { agents: [] });
  });

  it('lists a connected agent with its last hello, last load, its pressure and the signal in force, and jobs', async () => {
    const session = suite.clients.agent.Session();
    session.on('error', () => {}); // cancelled at the end of the test
    session.write({
      hello: {
        vm: 'vm-db',
        host: 'host-a',
        agentVersion: 'test',
        hostname: 'db1',
        jobs: [
          { name: 'pg_dump', schedule: '0 2 * * *', windowMs: 3_600_000, expectedDurationMs: 600_000, priority: 0 },
        ],
      },
    });
    session.write({
      load: {
        sampledUnixMs: Date.now(),
        cpuPercent: 37.5,
        memUsedBytes: 1024 ** 3,
        memTotalBytes: 4 * 1024 ** 3,
        diskReadBytesPerSec: 12.5 * 1024 ** 2,
        diskWriteBytesPerSec: 2048,
        load1: 0.75,
        ioPressure: { someAvg10: 12, someAvg60: 3 },
        cpuPressure: { someAvg10: 1.5 },
        memoryPressure: { fullAvg10: 0.04 },
        diskAwaitMs: 4.2,
      },
    });
    try {
      // The session is registered asynchronously: look until the load report is in.
      let agents: {
        connected: boolean;
        lastLoad: { cpuPercent: number; ioPressure: { someAvg10: number } } | null;
        loadSignal: string;
      }[] = [];
      for (let i = 0; i < 20 && !agents[0]?.lastLoad?.cpuPercent; i++) {
        agents = JSON.parse((await ctl('agents', '--json')).stdout).agents;
      }
      assert.equal(agents.length, 1);
      assert.equal(agents[0].connected, true);
      assert.equal(agents[0].lastLoad?.ioPressure.someAvg10, 12);
      assert.equal(agents[0].loadSignal, 'pressure (PSI)');
      const r = await ctl('agents', '--host', 'host-a');
      assert.equal(r.code, 0, r.stderr);
      const [header, row] = r.stdout.trimEnd().split('\n');
      assert.match(
        header,
        /^VM\s+HOST\s+HOSTNAME\s+CONNECTED\s+LAST HELLO\s+CPU\s+MEM\s+DISK READ\s+DISK WRITE\s+LOAD1\s+PSI IO\/CPU\/MEM\s+AWAIT\s+SIGNAL\s+JOBS$/,
      );
      assert.match(
        row,
        /^vm-db\s+host-a\s+db1\s+yes\s+(now|\d+s ago)\s+37\.5%\s+25\.0%\s+12\.5 MiB\/s\s+2\.0 KiB\/s\s+0\.75\s+12\.0\/1\.5\/0\.0%\s+4\.2 ms\s+pressure \(PSI\)\s+pg_dump$/,
      );
      assert.match((await ctl('status')).stdout, /\nhost-a\s+active\s+0\/4\s+0\/1\s+0\s+1\s/);
    } finally {
      session.cancel();
    }
  });

  it('pauses a host, which holds new requests back, and resumes it', async () => {
    const paused = await ctl('pause', '--host', 'host-a', '--reason', 'disk swap');
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^host-a paused: disk swap/);
    assert.match((await ctl('status')).stdout, /\nhost-a\s+paused: disk swap\s/);

    let granted = false;
    const waiting = acquire(suite.clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' }).then((t) => {
      granted = true;
      return t;
    });
    const queued = await ctl('tokens', '--json');
    assert.equal(granted, false, 'no grant while paused');
    // The request may reach the queue a moment after tokens asked; look again until it is there.
    let q = JSON.parse(queued.stdout).queued;
    for (let i = 0; i < 20 && q.length === 0; i++) q = JSON.parse((await ctl('tokens', '--json')).stdout).queued;
    assert.equal(q.length, 1);
    assert.equal(q[0].request.vm, 'vm-1');

    const resumed = await ctl('resume', '--host', 'host-a', '--json');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(JSON.parse(resumed.stdout).paused, false);
    const token = await waiting;
    assert.equal(token.vm, 'vm-1');
    const types = JSON.parse((await ctl('history', '--json')).stdout).events.map((e: { type: string }) => e.type);
    assert.deepEqual(
      types.filter((t: string) => t !== 'HISTORY_EVENT_TYPE_POLICY_CHANGED'),
      ['HISTORY_EVENT_TYPE_HOST_PAUSED', 'HISTORY_EVENT_TYPE_HOST_RESUMED', 'HISTORY_EVENT_TYPE_GRANTED'],
    );
  });

  it('revokes an active token named by its short id, so that its holder can no longer renew', async () => {
    const token = await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' });
    const r = await ctl('revoke', token.tokenId.slice(0, 8), '--reason', 'stuck backup');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^revoked token ${token.tokenId} \\(GUEST vm-1/restic on host-a, fencing 1\\)\\n$`),
    );
    await assert.rejects(renew(suite.clients, token), (err: { code: number }) => err.code === 9 || err.code === 5);
    assert.match((await ctl('tokens')).stdout, /^Active tokens\nno active tokens\n/);
    const events = JSON.parse((await ctl('history', '--json')).stdout).events;
    const revoked = events.find((e: { type: string }) => e.type === 'HISTORY_EVENT_TYPE_REVOKED');
    assert.equal(revoked.tokenId, token.tokenId);
    assert.match(revoked.detail, /stuck backup/);
  });

  it('says NOT_FOUND with exit 1 for a token that is not active', async () => {
    const r = await ctl('revoke', 'no-such-token');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^headroomctl: RevokeToken: NOT_FOUND: .+$/m);
  });

  it('sets only the policy fields given, and shows them back', async () => {
    const set = await ctl(
      'policy',
      'set',
      '--host',
      'host-a',
      '--max-guest',
      '2',
      '--lease-ttl',
      '1m30s',
      '--allow-overrun',
      'true',
    );
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^policy updated\n/);
    const got = await ctl('policy', 'get', '--host', 'host-a', '--json');
    assert.deepEqual(JSON.parse(got.stdout), {
      ...DEFAULT_POLICY,
      maxGuestTokens: 2,
      leaseTtlMs: 90_000,
      allowOverrun: true,
    });
    const table = await ctl('policy', 'get', '--host', 'host-a');
    assert.match(table.stdout, /max guest tokens:\s+2\n/);
    assert.match(table.stdout, /lease ttl:\s+1m30s\n/);
    assert.match(table.stdout, /allow overrun:\s+true\n/);
    // A second change leaves the first one alone.
    await ctl('policy', 'set', '--host', 'host-a', '--report-interval', '5s');
    assert.equal(JSON.parse((await ctl('policy', 'get', '--host', 'host-a', '--json')).stdout).maxGuestTokens, 2);
  });

  it("passes the coordinator's refusal of a bad policy through with exit 1", async () => {
    const r = await ctl('policy', 'set', '--host', 'host-a', '--max-guest', '0');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^headroomctl: SetPolicy: INVALID_ARGUMENT: .*max_guest_tokens/m);
  });

  it('host-backup exits with the code of its command and releases its HYPERVISOR token', async () => {
    const r = await ctl(
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-9',
      '--job',
      'vzdump',
      '--',
      'sh',
      '-c',
      'exit 3',
    );
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /headroomctl: granted token \S+ \(fencing 1\) on host-a at \d\d:\d\d:\d\d: planned start \d\d:\d\d:\d\d, .*lease 30s renewed while it runs\n/,
    );
    assert.match(r.stderr, /headroomctl: running sh -c 'exit 3'/);
    const events = JSON.parse((await ctl('history', '--json')).stdout).events.filter(
      (e: { type: string }) => e.type !== 'HISTORY_EVENT_TYPE_POLICY_CHANGED',
    );
    assert.deepEqual(
      events.map((e: { type: string; kind: string }) => `${e.type} ${e.kind}`),
      ['HISTORY_EVENT_TYPE_GRANTED TOKEN_KIND_HYPERVISOR', 'HISTORY_EVENT_TYPE_RELEASED TOKEN_KIND_HYPERVISOR'],
    );
    assert.equal(events[0].vm, 'vm-9');
    assert.equal(events[0].job, 'vzdump');
  });

  it('host-backup waits while a GUEST token holds the host and runs its command only after the release', async () => {
    const guest = await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' });
    const stamp = path.join(tempDir(), 'ran-at');
    const hb = spawnCtl([
      '--coordinator',
      suite.coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-2',
      '--',
      ...stampCommand(stamp),
    ]);

    const waiting = await hb.waitFor(
      'stderr',
      /waiting for a HYPERVISOR token on host-a for vm-2: queue position 1, a GUEST backup of vm-1 holds the host; planned start \d\d:\d\d:\d\d \(in [^)]+\)/,
    );
    assert.ok(waiting[0].length > 0);
    // It is really queued, and nothing ran.
    const queued = JSON.parse((await ctl('tokens', '--json')).stdout).queued;
    assert.deepEqual(
      queued.map((q: { request: { kind: string; vm: string } }) => `${q.request.kind} ${q.request.vm}`),
      ['TOKEN_KIND_HYPERVISOR vm-2'],
    );
    assert.equal(fs.existsSync(stamp), false, 'the command must not start while the guest token is held');

    const releasedAt = Date.now();
    await release(suite.clients, guest);
    const r = await hb.done;
    assert.equal(r.code, 0, r.stderr);
    const ranAt = Number(fs.readFileSync(stamp, 'utf8'));
    assert.ok(ranAt >= releasedAt, `ran at ${ranAt}, before the release at ${releasedAt}`);
    assert.match(r.stderr, /granted token/);
  });

  it('host-backup gives up with 75 when its window closes while a GUEST token holds the host', async () => {
    await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' });
    const stamp = path.join(tempDir(), 'ran-at');
    const r = await ctl(
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-2',
      '--window',
      '1s',
      '--',
      ...stampCommand(stamp),
    );
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /denied \(WINDOW_CLOSED\)/);
    assert.equal(fs.existsSync(stamp), false);
  });

  it('host-backup stops its command at once when its token is revoked, exiting 75', async () => {
    const hb = spawnCtl([
      '--coordinator',
      suite.coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-3',
      '--',
      'sleep',
      '30',
    ]);
    const m = await hb.waitFor('stderr', /granted token (\S+)/);
    await hb.waitFor('stderr', /running sleep 30/);
    const revokedAt = Date.now();
    const rev = await ctl('revoke', m[1], '--reason', 'maintenance window');
    assert.equal(rev.code, 0, rev.stderr);
    const r = await hb.done;
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /stopping the command: token revoked by the coordinator: maintenance window/);
    // Far sooner than the first renewal (TTL/3 = 10 s) would have noticed.
    assert.ok(Date.now() - revokedAt < 5_000, `took ${Date.now() - revokedAt} ms`);
  });

  it('history --follow prints new events as they come until interrupted', async () => {
    const follow = spawnCtl(['--coordinator', suite.coordinator.address, 'history', '--follow']);
    await follow.waitFor('stdout', /^TIME\s+TYPE\s+HOST/);
    const token = await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-7', job: 'borg' });
    await follow.waitFor(
      'stdout',
      new RegExp(`GRANTED\\s+host-a\\s+vm-7\\s+borg\\s+GUEST\\s+${token.tokenId.slice(0, 8)}`),
    );
    await release(suite.clients, token);
    await follow.waitFor('stdout', /RELEASED\s+host-a\s+vm-7/);
    follow.process.kill('SIGINT');
    const r = await follow.done;
    assert.equal(r.code, 0, r.stderr);
  });

  it('history --follow --json prints one JSON event per line', async () => {
    const follow = spawnCtl([
      '--coordinator',
      suite.coordinator.address,
      'history',
      '--follow',
      '--json',
      '--vm',
      'vm-8',
    ]);
    // Whether these land before or after the watch starts, the coordinator replays what came after the
    // listed events: each is printed exactly once.
    await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-other', job: 'x' });
    const token = await acquire(suite.clients, { kind: 'GUEST', vm: 'vm-8', job: 'borg' });
    await follow.waitFor('stdout', /"HISTORY_EVENT_TYPE_GRANTED"/);
    follow.process.kill('SIGTERM');
    const r = await follow.done;
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.vm} ${e.tokenId}`),
      [`HISTORY_EVENT_TYPE_GRANTED vm-8 ${token.tokenId}`],
    );
  });
});

describe('headroomctl without a coordinator', function () {
  this.timeout(30_000);
  afterEach(killAll);

  it('says that the coordinator is unreachable, naming its address, with exit 1', async () => {
    const port = await closedPort();
    const r = await runCtl(['--coordinator', `127.0.0.1:${port}`, 'status']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^headroomctl: ListHosts: UNAVAILABLE: the coordinator at 127\\.0\\.0\\.1:${port} is unreachable \\(.+\\)$`,
        'm',
      ),
    );
    assert.equal(r.stdout, '');
  });

  it('takes the address from HEADROOM_COORDINATOR', async () => {
    const port = await closedPort();
    const r = await runCtl(['tokens'], { HEADROOM_COORDINATOR: `127.0.0.1:${port}` });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`ListTokens: UNAVAILABLE: the coordinator at 127\\.0\\.0\\.1:${port} is unreachable`),
    );
  });

  it('host-backup keeps trying until its window ends, then exits 75 without running the command', async () => {
    const port = await closedPort();
    const stamp = path.join(tempDir(), 'ran-at');
    const started = Date.now();
    const r = await runCtl([
      '--coordinator',
      `127.0.0.1:${port}`,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-1',
      '--window',
      '2s',
      '--',
      ...stampCommand(stamp),
    ]);
    assert.equal(r.code, 75, r.stderr);
    assert.ok(Date.now() - started >= 1_900, 'gave up before the window ended');
    assert.match(
      r.stderr,
      new RegExp(
        `the coordinator at 127\\.0\\.0\\.1:${port} is unreachable \\(UNAVAILABLE: .*\\); retrying in \\S+, giving up at \\d\\d:\\d\\d:\\d\\d`,
      ),
    );
    assert.match(r.stderr, /skipped: could not get a HYPERVISOR token/);
    assert.equal(fs.existsSync(stamp), false);
  });

  it('refuses an unknown option with exit 64 in one line, without connecting', async () => {
    const r = await runCtl(['tokens', '--hots', 'a']);
    assert.equal(r.code, 64);
    assert.equal(
      r.stderr,
      "headroomctl: unknown option --hots (did you mean --host?); see 'headroomctl tokens --help'\n",
    );
  });
});

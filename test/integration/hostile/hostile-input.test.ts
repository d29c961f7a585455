/**
 * Hostile input against a real coordinator process over real gRPC on loopback: fast-check requests and
 * raw random bytes at every method, oversized messages, sessions that never say hello, more streams on
 * one connection than it may carry, and history watchers that stop reading. Afterwards the coordinator is still
 * up and serving, every answer had a status that blames the right side, and its memory stayed bounded.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { MAX_MESSAGE_BYTES, unary } from '../../../common/client/connection';
import {
  HELLO_TIMEOUT_MS,
  MAX_CONCURRENT_CALLS,
  MAX_STREAMS_PER_CONNECTION,
  MAX_WATCH_BACKLOG,
} from '../../../coordinator/rpc/limits';
import { rssBytes } from '../../../bench/proc-stats';
import type { Clients } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { connectPlain, grant, release } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { rawHttp2 } from './raw-http2';
import { stallingProxy } from './stalling-proxy';
import {
  type Answer,
  type FuzzMethod,
  breaksRule,
  callRaw,
  encodedRequest,
  headroomMethods,
  messageObject,
  rawClient,
  root,
} from './wire-fuzz';
import { propertyRuns } from '../../helpers/property-runs';
import { formatDuration } from '../../../common/util/duration';

const SESSION = '/headroom.v1.AgentService/Session';
const WATCH = '/headroom.v1.AdminService/WatchHistory';

describe('hostile input', function () {
  this.timeout(120_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let raw: grpc.Client;
  let rssAtStart: number;
  /** RSS once the fuzzed plans ran: the planning threads (each a V8 isolate with its own heap) exist by then. */
  let rssWithPlanners: number;
  const methods = headroomMethods();
  const method = (path: string) => methods.find((m) => m.path === path)!;
  /** Every answer any test here got, by method, to check the rule over all of them at the end. */
  const answers: { method: FuzzMethod; answer: Answer; input: string }[] = [];

  const record = (m: FuzzMethod, answer: Answer, input: string) => {
    answers.push({ method: m, answer, input });
    return answer;
  };

  before(async () => {
    coordinator = await startCoordinator({ host: 'host-a', env: { HEADROOM_LOG: 'warn' } });
    clients = connectPlain(coordinator.address);
    raw = rawClient(coordinator.address);
    await unary(clients.admin.ListHosts.bind(clients.admin), {});
    rssAtStart = rssBytes(coordinator.process.pid!)!;
  });

  after(async () => {
    raw?.close();
    clients?.close();
    await coordinator?.stop();
  });

  it('enumerates every method of the four services from the descriptor', () => {
    const services = new Set(methods.map((m) => m.path.split('/')[1]));
    assert.deepEqual([...services].sort(), [
      'headroom.v1.AdminService',
      'headroom.v1.AgentService',
      'headroom.v1.PkiService',
      'headroom.v1.TokenService',
    ]);
    assert.ok(methods.some((m) => m.path === SESSION) && methods.some((m) => m.path === WATCH));
    assert.ok(methods.length >= 15, `${methods.length} methods`);
  });

  it('answers random valid-encoding requests at every method with a status that blames the client, naming the field', async () => {
    for (const m of methods) {
      // A session gets a few messages in a row (the first is often a hello), so the later ones reach past it.
      const payloads = m.requestStream
        ? fc.array(encodedRequest(m.requestType), { minLength: 1, maxLength: 4 })
        : encodedRequest(m.requestType).map((b) => [b]);
      await fc.assert(
        fc.asyncProperty(payloads, async (p) => {
          const answer = record(
            m,
            await callRaw(raw, m, p),
            p.map((b) => JSON.stringify(m.requestType.decode(b).toJSON())).join(' | '),
          );
          const broken = breaksRule(m, answer);
          assert.equal(broken, undefined, `${m.path}: ${broken}`);
        }),
        { numRuns: propertyRuns(m.responseStream || m.requestStream ? 40 : 120) },
      );
    }
  });

  it('keeps to the rule on sessions that say a valid hello and then send random messages', async () => {
    const m = method(SESSION);
    const hello = (vm: string, jobs: object[]) =>
      Buffer.from(
        m.requestType.encode(m.requestType.fromObject({ hello: { vm, agentVersion: 'fuzz', jobs } })).finish(),
      );
    // Declared jobs with valid names and anything else (schedules, windows, durations), for the planner to meet later.
    const jobs = fc
      .array(messageObject(root.lookupType('headroom.v1.JobDeclaration')), { maxLength: 4 })
      .map((js) => js.map((j, i) => ({ ...j, name: `job-${i}` })));
    await fc.assert(
      fc.asyncProperty(
        fc.nat(1_000),
        jobs,
        fc.array(encodedRequest(m.requestType), { minLength: 1, maxLength: 6 }),
        async (n, declared, rest) => {
          const payloads = [hello(`fuzz-vm-${n}`, declared), ...rest];
          const answer = record(
            m,
            await callRaw(raw, m, payloads),
            rest.map((b) => JSON.stringify(m.requestType.decode(b).toJSON())).join(' | '),
          );
          const broken = breaksRule(m, answer);
          assert.equal(broken, undefined, `${m.path}: ${broken}`);
        },
      ),
      { numRuns: propertyRuns(150) },
    );
  });

  it('refuses a hello declaring a job cost past 2^53 (found by the fuzz: stored, it made every later plan of the host fail)', async () => {
    const m = method(SESSION);
    const jobs = [{ name: 'big', schedule: '0 3 * * *', declaredCost: { ioBytesPerSec: '9007199254740993' } }];
    const bytes = Buffer.from(
      m.requestType.encode(m.requestType.fromObject({ hello: { vm: 'vm-big-cost', jobs } })).finish(),
    );
    const answer = record(m, await callRaw(raw, m, [bytes], 10_000), 'job cost 2^53 + 1');
    assert.equal(answer.code, grpc.status.INVALID_ARGUMENT, answer.details);
    assert.match(answer.details, /^hello\.jobs\[0\]\.declared_cost\.io_bytes_per_sec: /);
    // The first plan of a host whose fuzzed agents declared many jobs: on a busy machine it can take over
    // 10 s. What is asserted is that it comes, not how fast.
    const plan = record(
      method('/headroom.v1.AdminService/GetPlan'),
      await callRaw(raw, method('/headroom.v1.AdminService/GetPlan'), [Buffer.alloc(0)], undefined, 90_000),
      'plan of host-a',
    );
    assert.equal(plan.code, grpc.status.OK, plan.details);
  });

  it('keeps to the rule on admin reads and plans over the agents and jobs the fuzzed hellos declared', async () => {
    for (const m of methods.filter((x) => x.path.startsWith('/headroom.v1.AdminService/') && !x.responseStream)) {
      await fc.assert(
        fc.asyncProperty(encodedRequest(m.requestType), fc.constantFrom('', 'host-a'), async (bytes, host) => {
          // Most of them about the coordinator's own host, where the fuzzed agents said hello.
          const request = m.requestType.toObject(m.requestType.decode(bytes), { longs: String });
          const payload = Buffer.from(m.requestType.encode(m.requestType.fromObject({ ...request, host })).finish());
          const answer = record(m, await callRaw(raw, m, [payload]), JSON.stringify(request).slice(0, 500));
          const broken = breaksRule(m, answer);
          assert.equal(broken, undefined, `${m.path}: ${broken}`);
        }),
        { numRuns: propertyRuns(25) },
      );
    }
    rssWithPlanners = rssBytes(coordinator.process.pid!)!;
  });

  it('keeps to the rule on acquires whose identity is valid and whose other fields are random', async () => {
    const m = method('/headroom.v1.TokenService/Acquire');
    const request = fc.tuple(
      fc.nat(1_000_000),
      fc.constantFrom('TOKEN_KIND_GUEST', 'TOKEN_KIND_HYPERVISOR'),
      messageObject(m.requestType),
    );
    await fc.assert(
      fc.asyncProperty(request, async ([n, kind, rest]) => {
        const object = { ...rest, requestId: `fuzz-${n}`, vm: `fuzz-vm-${n % 50}`, kind };
        const bytes = Buffer.from(m.requestType.encode(m.requestType.fromObject(object)).finish());
        const answer = record(m, await callRaw(raw, m, [bytes]), JSON.stringify(object).slice(0, 500));
        const broken = breaksRule(m, answer);
        assert.equal(broken, undefined, `${m.path}: ${broken}`);
      }),
      { numRuns: propertyRuns(100) },
    );
  });

  it('answers raw random bytes at every method with INVALID_ARGUMENT or a normal answer, never INTERNAL', async () => {
    for (const m of methods) {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 512 }), async (bytes) => {
          const answer = record(m, await callRaw(raw, m, [Buffer.from(bytes)]), Buffer.from(bytes).toString('hex'));
          const broken = breaksRule(m, answer);
          assert.equal(broken, undefined, `${m.path}: ${broken}`);
        }),
        { numRuns: propertyRuns(60) },
      );
    }
    // Bytes that cannot be a message at all (a field with wire type 7) are refused as such, not passed on.
    const garbage = Buffer.from([0x0f, 0xff, 0xff]);
    for (const m of methods) {
      const answer = record(m, await callRaw(raw, m, [garbage]), 'wire type 7');
      assert.equal(
        answer.code,
        grpc.status.INVALID_ARGUMENT,
        `${m.path}: ${grpc.status[answer.code]} ${answer.details}`,
      );
      assert.match(answer.details, /^request: is not a valid/);
    }
  });

  it('refuses a message over the 1 MiB limit at every method with RESOURCE_EXHAUSTED, and one just under it by its field', async () => {
    const oversized = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x41);
    for (const m of methods) {
      const answer = record(m, await callRaw(raw, m, [oversized], 10_000), `${oversized.length} bytes`);
      assert.equal(
        answer.code,
        grpc.status.RESOURCE_EXHAUSTED,
        `${m.path}: ${grpc.status[answer.code]} ${answer.details}`,
      );
    }
    const m = method('/headroom.v1.TokenService/Acquire');
    const job = 'j'.repeat(MAX_MESSAGE_BYTES - 1024);
    const bytes = Buffer.from(
      m.requestType
        .encode(m.requestType.fromObject({ requestId: 'big-1', kind: 'TOKEN_KIND_GUEST', vm: 'vm-big', job }))
        .finish(),
    );
    const answer = record(m, await callRaw(raw, m, [bytes], 10_000), 'job of 1 MiB - 1 KiB');
    assert.equal(answer.code, grpc.status.INVALID_ARGUMENT, answer.details);
    assert.match(answer.details, /^job: /);
  });

  it('closes a session that never says hello after the hello timeout, naming hello', async () => {
    const silent = openSilentSession(raw);
    const answer = record(method(SESSION), await silent.status, 'nothing sent');
    assert.equal(answer.code, grpc.status.INVALID_ARGUMENT);
    assert.match(answer.details, new RegExp(`^hello: no hello within ${formatDuration(HELLO_TIMEOUT_MS)}`));
  });

  it('advertises the per-connection stream limit, and closes the connection of a client that ignores it', async () => {
    // grpc-js and Node's own client queue the calls beyond the advertised limit (test/integration/coordinator/multiplexing.test.ts).
    const h2 = rawHttp2(coordinator.address);
    try {
      assert.equal(await h2.maxConcurrentStreams, MAX_STREAMS_PER_CONNECTION);
      const ids = Array.from({ length: MAX_STREAMS_PER_CONNECTION + 1 }, () => h2.openStream(SESSION));
      // The transport (Node's http2) never processes the extra stream and ends the whole connection, so the
      // streams it had are not left pinned either.
      await h2.closed;
      const goaway = h2.goaway();
      assert.ok(goaway, 'the server said GOAWAY before closing');
      assert.ok(goaway.lastStreamId < ids[MAX_STREAMS_PER_CONNECTION], `processed up to stream ${goaway.lastStreamId}`);
    } finally {
      h2.close();
    }
    // The coordinator is serving sessions on other connections.
    const settings = await helloAndSettings(raw, 'vm-after-flood');
    assert.equal(settings.vm, 'vm-after-flood');
  });

  it('refuses history watches beyond the cap of all connections together', async () => {
    const cap = MAX_CONCURRENT_CALLS[WATCH];
    const conns = [rawClient(coordinator.address), rawClient(coordinator.address), rawClient(coordinator.address)];
    const m = method(WATCH);
    const request = Buffer.from(m.requestType.encode(m.requestType.fromObject({ host: 'host-a' })).finish());
    try {
      const open = Array.from({ length: cap }, (_, i) =>
        conns[i % 2].makeServerStreamRequest(
          WATCH,
          (b: Buffer) => b,
          (b: Buffer) => b,
          request,
        ),
      );
      for (const s of open) s.on('error', () => {});
      const events = await unary(clients.admin.ListHistory.bind(clients.admin), { host: 'host-a' });
      assert.ok(events.events.length > 0);
      // Each open watch has sent its catch-up: it is being served, not queued.
      await Promise.all(open.map((s) => new Promise((resolve) => s.once('data', resolve))));
      const answer = record(m, await callRaw(conns[2], m, [request], 5_000), `watch number ${cap + 1}`);
      assert.equal(answer.code, grpc.status.RESOURCE_EXHAUSTED, answer.details);
      assert.match(answer.details, /WatchHistory/);
      for (const s of open) s.cancel();
    } finally {
      for (const c of conns) c.close();
    }
  });

  it('holds a history watcher stalled at the network to a bounded backlog, ends it with the sequence to resume from, and loses nothing', async () => {
    const host = 'slow-h';
    await release(clients, await grant(clients, { host, vm: 'slow-vm-0' }));
    const history = (await unary(clients.admin.ListHistory.bind(clients.admin), { host })).events;
    const afterSeq = history.at(-1)!.seq;

    const proxy = await stallingProxy(coordinator.address);
    const stalledClients = connectPlain(proxy.address);
    try {
      // The slow watcher starts one event back, so that its first event proves the server serves it.
      const slow = stalledClients.admin.WatchHistory({ host, afterSeq: afterSeq - 1 });
      const slowEvents: v1.HistoryEvent__Output[] = [];
      slow.on('data', (e: v1.HistoryEvent__Output) => slowEvents.push(e));
      const slowStatus = new Promise<grpc.StatusObject>((resolve) => slow.on('status', resolve));
      slow.on('error', () => {});
      await waitFor(() => slowEvents.length === 1, 10_000, 'the slow watcher to be served');
      proxy.stall();

      const reader = clients.admin.WatchHistory({ host, afterSeq });
      const readerEvents: v1.HistoryEvent__Output[] = [];
      reader.on('data', (e: v1.HistoryEvent__Output) => readerEvents.push(e));
      reader.on('error', () => {});

      // Four VMs churn tokens: two history events per cycle, well past what the slow watcher may have waiting.
      const cycles = Math.ceil((3 * MAX_WATCH_BACKLOG) / 8);
      await Promise.all(
        [1, 2, 3, 4].map(async (v) => {
          for (let i = 0; i < cycles; i++) await release(clients, await grant(clients, { host, vm: `slow-vm-${v}` }));
        }),
      );
      const total = 8 * cycles;
      await waitFor(() => readerEvents.length === total, 30_000, 'the reading watcher to get every event');
      reader.cancel();

      proxy.resume();
      const status = await slowStatus;
      assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED, status.details);
      const received = slowEvents.slice(1);
      const resumeFrom = Number(/after_seq=(\d+)/.exec(status.details)?.[1]);
      assert.equal(resumeFrom, received.at(-1)!.seq, 'resume from the last event it was sent');
      assert.ok(received.length < total, `ended before it had all ${total} events`);
      assert.deepEqual(
        received.map((e) => e.seq),
        readerEvents.slice(0, received.length).map((e) => e.seq),
      );

      const again = clients.admin.WatchHistory({ host, afterSeq: resumeFrom });
      const rest: v1.HistoryEvent__Output[] = [];
      again.on('data', (e: v1.HistoryEvent__Output) => rest.push(e));
      again.on('error', () => {});
      await waitFor(() => received.length + rest.length === total, 30_000, 'the rest after watching again');
      assert.deepEqual(
        [...received, ...rest].map((e) => e.seq),
        readerEvents.map((e) => e.seq),
      );
      again.cancel();
    } finally {
      stalledClients.close();
      await proxy.close();
    }
  });

  it('is still up and serving afterwards, with bounded memory and no internal error logged', async () => {
    assert.equal(coordinator.process.exitCode, null);
    const health = new grpc.Client(coordinator.address, grpc.credentials.createInsecure());
    const check = method('/headroom.v1.AdminService/ListHosts');
    const answer = await callRaw(health, check, [Buffer.alloc(0)]);
    health.close();
    assert.equal(answer.code, grpc.status.OK);
    assert.equal(answer.messages, 1);
    const codes = new Set(answers.map((a) => a.answer.code));
    assert.ok(
      codes.has(grpc.status.INVALID_ARGUMENT) && codes.has(grpc.status.RESOURCE_EXHAUSTED) && codes.has(grpc.status.OK),
    );
    for (const { method: m, answer, input } of answers)
      assert.equal(breaksRule(m, answer), undefined, `${m.path} <- ${input}`);
    assert.doesNotMatch(coordinator.log(), /internal error/);
    const rss = rssBytes(coordinator.process.pid!)!;
    console.log(
      `      ${answers.length} hostile calls; coordinator RSS ${mib(rssAtStart)} at start, ` +
        `${mib(rssWithPlanners)} once the fuzzed plans ran, ${mib(rss)} at the end`,
    );
    // Structural, generous. From the start: thousands of calls must not cost hundreds of megabytes, beyond
    // the two planning threads the fuzzed hellos start (a replan and a GetPlan thread, tens of MiB each, with
    // heaps that V8 returns lazily). From there on, what is bounded is buffering: the stream flood of a
    // connection, the 1 MiB messages, the stalled watcher's backlog.
    assert.ok(rss < rssAtStart + 250 * 2 ** 20, `RSS grew from ${mib(rssAtStart)} to ${mib(rss)}`);
    assert.ok(
      rss < rssWithPlanners + 100 * 2 ** 20,
      `RSS grew from ${mib(rssWithPlanners)} once the fuzzed plans ran to ${mib(rss)}`,
    );
  });
});

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** A Session stream that sends nothing and stays open: its status, and a way to cancel it. */
function openSilentSession(client: grpc.Client): { status: Promise<Answer> } {
  const call = client.makeBidiStreamRequest(
    SESSION,
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  call.on('error', () => {});
  const status = new Promise<Answer>((resolve) =>
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, messages: 0 })),
  );
  return { status };
}

/** Says hello on a new session of `client` and resolves with the coordinator's settings. */
function helloAndSettings(client: grpc.Client, vm: string): Promise<v1.SessionSettings__Output> {
  const methods = headroomMethods();
  const m = methods.find((x) => x.path === SESSION)!;
  const call = client.makeBidiStreamRequest(
    SESSION,
    (b: Buffer) => b,
    (b: Buffer) => m.responseDeserialize(b) as v1.CoordinatorMessage__Output,
  );
  return new Promise((resolve, reject) => {
    call.on('data', (msg: v1.CoordinatorMessage__Output) => {
      if (msg.settings) {
        resolve(msg.settings);
        call.cancel();
      }
    });
    call.on('error', (e) => (e as grpc.ServiceError).code !== grpc.status.CANCELLED && reject(e));
    call.write(
      Buffer.from(m.requestType.encode(m.requestType.fromObject({ hello: { vm, agentVersion: 'test' } })).finish()),
    );
  });
}

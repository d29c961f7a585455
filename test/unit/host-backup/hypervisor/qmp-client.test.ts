/**
 * The QMP client against a scripted server on a real unix socket: negotiation, answers matched by id in
 * any order, errors, events, timeouts and a connection lost under pending commands.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  QmpClient,
  QmpCommandError,
  QmpConnectionError,
  type QmpEvent,
} from '../../../../host-backup/hypervisor/qmp-client';

const GREETING = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: '' }, capabilities: ['oob'] } };

interface Message {
  execute: string;
  arguments?: Record<string, unknown>;
  id: string;
}

/** A QMP server that greets (unless told not to) and hands every command after negotiation to `onCommand`. */
class FakeQmp {
  readonly path: string;
  private server: net.Server;
  socket?: net.Socket;
  received: Message[] = [];
  onCommand: (m: Message, send: (o: unknown) => void) => void = () => {};

  constructor(dir: string, greet = true) {
    this.path = path.join(dir, 'qmp.sock');
    this.server = net.createServer((socket) => {
      this.socket = socket;
      const send = (o: unknown) => socket.write(`${JSON.stringify(o)}\r\n`);
      if (greet) send(GREETING);
      let buf = '';
      socket.on('data', (d) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const m = JSON.parse(buf.slice(0, i)) as Message;
          buf = buf.slice(i + 1);
          this.received.push(m);
          if (m.execute === 'qmp_capabilities') send({ return: {}, id: m.id });
          else this.onCommand(m, send);
        }
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  close(): void {
    this.socket?.destroy();
    this.server.close();
  }
}

describe('QMP client', () => {
  let dir: string;
  let fake: FakeQmp;
  let client: QmpClient | undefined;

  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-qmp-unit-'))));
  afterEach(() => {
    client?.close();
    client = undefined;
    fake?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function connected(onCommand: FakeQmp['onCommand'], options = {}): Promise<QmpClient> {
    fake = new FakeQmp(dir);
    fake.onCommand = onCommand;
    await fake.listen();
    client = await QmpClient.connect(fake.path, options);
    return client;
  }

  it('negotiates capabilities first and reads the version from the greeting', async () => {
    const c = await connected(() => {});
    assert.equal(c.version, '7.2.22');
    assert.deepEqual(
      fake.received.map((m) => m.execute),
      ['qmp_capabilities'],
    );
  });

  it('matches answers to commands by id, whatever their order', async () => {
    const held: Array<() => void> = [];
    const c = await connected((m, send) => held.push(() => send({ return: { echo: m.arguments?.n }, id: m.id })));
    const a = c.execute('x', { n: 1 });
    const b = c.execute('x', { n: 2 });
    while (held.length < 2) await new Promise((r) => setTimeout(r, 5));
    held[1]();
    held[0]();
    assert.deepEqual(await Promise.all([a, b]), [{ echo: 1 }, { echo: 2 }]);
  });

  it("turns QEMU's error into a QmpCommandError naming the command, the class and the description", async () => {
    const c = await connected((m, send) =>
      send({ error: { class: 'DeviceNotFound', desc: "Device 'nope' not found" }, id: m.id }),
    );
    await assert.rejects(c.execute('block-dirty-bitmap-add', { node: 'nope' }), (e: unknown) => {
      assert.ok(e instanceof QmpCommandError);
      assert.equal(e.errorClass, 'DeviceNotFound');
      assert.equal(e.message, "QMP block-dirty-bitmap-add failed: Device 'nope' not found (DeviceNotFound)");
      return true;
    });
  });

  it("delivers events to subscribers, with QEMU's timestamp, until they unsubscribe", async () => {
    const c = await connected((m, send) => {
      send({
        event: 'JOB_STATUS_CHANGE',
        data: { id: 'j1', status: 'created' },
        timestamp: { seconds: 1795932000, microseconds: 123456 },
      });
      send({ return: {}, id: m.id });
    });
    const seen: QmpEvent[] = [];
    const stop = c.subscribe((e) => seen.push(e));
    await c.execute('transaction');
    stop();
    await c.execute('transaction');
    assert.deepEqual(seen, [
      { event: 'JOB_STATUS_CHANGE', data: { id: 'j1', status: 'created' }, timestampMs: 1795932000123 },
    ]);
  });

  it('times a command out, drops its late answer, and keeps working', async () => {
    let first = true;
    const c = await connected((m, send) => {
      if (first) {
        first = false;
        setTimeout(() => send({ return: 'late', id: m.id }), 100);
      } else send({ return: 'ok', id: m.id });
    });
    await assert.rejects(c.execute('slow', undefined, { timeoutMs: 30 }), /QMP slow: no answer within 30ms/);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(await c.execute('fast'), 'ok');
  });

  it('rejects pending commands when the connection is lost, and every later one', async () => {
    const c = await connected(() => fake.socket?.destroy());
    await assert.rejects(
      c.execute('quit'),
      (e: unknown) => e instanceof QmpConnectionError && /closed/.test((e as Error).message),
    );
    await assert.rejects(c.execute('query-block'), QmpConnectionError);
  });

  it('says a QMP socket serves one client at a time when no greeting comes', async () => {
    fake = new FakeQmp(dir, false);
    await fake.listen();
    await assert.rejects(
      QmpClient.connect(fake.path, { timeoutMs: 50 }),
      /no greeting within 50ms \(a QMP socket serves one client at a time/,
    );
  });

  it('says which socket could not be reached', async () => {
    await assert.rejects(QmpClient.connect(path.join(dir, 'absent.sock')), /QMP socket .*absent\.sock: connect ENOENT/);
  });
});

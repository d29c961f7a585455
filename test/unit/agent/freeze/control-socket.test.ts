import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type ControlRequest,
  ControlSocketError,
  closeControlSocket,
  controlRequest,
  listenControlSocket,
} from '../../../../agent/freeze/control-socket';

const freeze = { freezeNotice: { frozen: true, source: 'qemu-guest-agent', holdMs: 0 } };

/** Sends raw bytes and resolves with the reply line. */
function raw(file: string, bytes: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = net.connect(file, () => s.write(bytes));
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('end', () => resolve(JSON.parse(out)));
    s.on('error', reject);
  });
}

describe('agent control socket', () => {
  let dir: string;
  let file: string;
  const servers: net.Server[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-ctl-'));
    file = path.join(dir, 'agent.sock');
  });
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  it('answers a request, is 0600 from the start, and is removed at close', async () => {
    const seen: ControlRequest[] = [];
    const server = await listenControlSocket(file, (r) => {
      seen.push(r);
      return { ok: true, message: 'noted' };
    });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(await controlRequest(file, freeze, 2_000), { ok: true, message: 'noted' });
    assert.deepEqual(seen, [freeze]);
    await closeControlSocket(server, file);
    assert.equal(fs.existsSync(file), false);
  });

  it('refuses requests it does not know, saying which field is wrong', async () => {
    servers.push(await listenControlSocket(file, () => ({ ok: true, message: 'should not be called' })));
    assert.deepEqual(await raw(file, 'not json\n'), { ok: false, message: 'request is not a JSON line' });
    assert.deepEqual(await raw(file, '{"reboot":true}\n'), {
      ok: false,
      message: 'unknown request (expected freezeNotice)',
    });
    assert.deepEqual(await raw(file, '{"freezeNotice":{"frozen":"yes","source":"x","holdMs":0}}\n'), {
      ok: false,
      message: 'freezeNotice.frozen: expected true or false',
    });
    assert.deepEqual(await raw(file, '{"freezeNotice":{"frozen":true,"source":"x","holdMs":-1}}\n'), {
      ok: false,
      message: 'freezeNotice.holdMs: expected an integer >= 0',
    });
    assert.deepEqual(await raw(file, 'x'.repeat(5000)), { ok: false, message: 'request longer than 4096 bytes' });
  });

  it('replaces a socket left by a daemon that died, and refuses one another daemon answers on', async () => {
    // A listener SIGKILLed leaves its socket file behind.
    const child = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => console.log('up'))`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => child.stdout!.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(fs.lstatSync(file).isSocket(), 'the dead daemon left its socket');
    const server = await listenControlSocket(file, () => ({ ok: true, message: 'new' }));
    servers.push(server);
    assert.deepEqual(await controlRequest(file, freeze, 2_000), { ok: true, message: 'new' });

    await assert.rejects(
      listenControlSocket(file, () => ({ ok: true, message: 'second' })),
      (e: Error) => e instanceof ControlSocketError && e.message === `another agent is listening on ${file}`,
    );
  });

  it('never replaces a file that is not a socket, and names the path it cannot listen on', async () => {
    fs.writeFileSync(file, 'precious');
    await assert.rejects(
      listenControlSocket(file, () => ({ ok: true, message: '' })),
      { message: `${file} exists and is not a socket: not replacing it` },
    );
    assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
    const missingDir = path.join(dir, 'no-such-dir', 'agent.sock');
    await assert.rejects(
      listenControlSocket(missingDir, () => ({ ok: true, message: '' })),
      (e: Error) => e.message.startsWith(`cannot listen on ${missingDir}: E`),
    ); // libuv says EACCES or ENOENT
  });

  it('client: says no agent listens, and gives up on one that does not answer', async () => {
    await assert.rejects(controlRequest(file, freeze, 2_000), { message: `no agent is listening on ${file} (ENOENT)` });
    const mute = net.createServer(() => {}).listen(file);
    servers.push(mute);
    await new Promise((r) => mute.once('listening', r));
    await assert.rejects(controlRequest(file, freeze, 200), {
      message: `no answer from the agent on ${file} within 200ms`,
    });
  });
});

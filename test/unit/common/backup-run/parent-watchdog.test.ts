import { strict as assert } from 'node:assert';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { WatchdogChannel, watchdogCommand } from '../../../../common/backup-run/parent-watchdog';

/** Our end of the watchdog's pipe: what the watchdog writes is pushed in, what we write is recorded. */
class FakeSocket extends Duplex {
  readonly written: string[] = [];
  unrefed = false;
  unref(): this {
    this.unrefed = true;
    return this;
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.written.push(String(chunk));
    done();
  }
  asSocket(): Socket {
    return this as unknown as Socket;
  }
}

describe('parent watchdog', () => {
  it('passes the command as positional parameters after the grace, never inside the script', () => {
    const argv = ['restic', 'backup', '$(reboot)', '; rm -rf /'];
    const { file, args } = watchdogCommand(argv, 1_500);
    assert.equal(file, '/bin/sh');
    assert.equal(args[0], '-c');
    assert.deepEqual(args.slice(3), ['1.5', '2', ...argv]);
    for (const a of argv) assert.ok(!args[1].includes(a), `the script does not contain ${a}`);
    assert.match(args[1], /exec "\$@" 3<&-/);
    assert.deepEqual(watchdogCommand(['x'], 10_000).args.slice(3, 5), ['10', '10']);
  });

  it("learns the watchdog's pid from its first line, and does not keep the process alive", async () => {
    const socket = new FakeSocket();
    const channel = new WatchdogChannel(socket.asSocket());
    assert.equal(socket.unrefed, true);
    socket.push('43');
    socket.push('21\n');
    await channel.ready;
    assert.equal(channel.pid, 4321);
  });

  it('is ready without a pid when the pipe closes first', async () => {
    const socket = new FakeSocket();
    const channel = new WatchdogChannel(socket.asSocket());
    socket.push(null);
    await channel.ready;
    assert.equal(channel.pid, undefined);
    await new WatchdogChannel(null).ready;
  });

  it('tells the watchdog to stand down with one line, once, and resolves when it has gone', async () => {
    const socket = new FakeSocket();
    const channel = new WatchdogChannel(socket.asSocket());
    let gone = false;
    void channel.dismiss().then(() => (gone = true));
    void channel.dismiss();
    assert.deepEqual(socket.written, ['\n']);
    assert.equal(socket.writableEnded, true);
    await new Promise((r) => setImmediate(r));
    assert.equal(gone, false, 'still there until its end of the pipe closes');
    socket.push(null); // the watchdog exits
    await channel.dismiss();
    assert.equal(gone, true);
    await new WatchdogChannel(null).dismiss();
  });
});

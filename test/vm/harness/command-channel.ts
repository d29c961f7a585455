/**
 * "Run this shell text in the guest and give me its output": the host end of the virtio-serial command
 * channel that /init serves (guest-init.ts has the protocol). One request at a time, in order.
 */
import * as net from 'node:net';
import { waitFor } from '../../helpers/wait';

export interface CommandResult {
  /** stdout and stderr together, as the guest's sh wrote them. */
  output: Buffer;
  code: number;
}

export class CommandChannel {
  private socket?: net.Socket;
  private buffered = '';
  private nextId = 1;
  private pending?: { id: number; resolve: (r: CommandResult) => void; reject: (e: Error) => void };
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly socketPath: string) {}

  /** Connects, then waits until the guest answers (the guest serves the port once its /init gets there). */
  async open(timeoutMs: number): Promise<void> {
    await waitFor(() => this.tryConnect(), timeoutMs, `the command channel socket ${this.socketPath}`);
    const until = Date.now() + timeoutMs;
    // A request sent before the guest opened its end is lost: ask again until one is answered.
    for (;;) {
      const answer = await Promise.race([
        this.send('true'),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000)),
      ]);
      if (answer) return;
      if (Date.now() > until) throw new Error(`the guest did not answer on its command channel within ${timeoutMs} ms`);
      this.pending = undefined;
    }
  }

  /** Runs `text` with the guest's sh; resolves with its output and exit code. Rejects when the channel closes. */
  run(text: string): Promise<CommandResult> {
    const result = this.queue.then(() => this.send(text));
    this.queue = result.catch(() => {});
    return result;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private tryConnect(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(this.socketPath);
      socket.once('error', () => resolve(false));
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        this.socket = socket;
        socket.setEncoding('latin1');
        socket.on('data', (d: string) => this.onData(d));
        socket.on('error', (err) => this.fail(err));
        socket.on('close', () => this.fail(new Error('the guest command channel closed')));
        resolve(true);
      });
    });
  }

  private send(text: string): Promise<CommandResult> {
    if (!this.socket) return Promise.reject(new Error('the guest command channel is not open'));
    const id = this.nextId++;
    const done = new Promise<CommandResult>((resolve, reject) => (this.pending = { id, resolve, reject }));
    this.socket.write(`${id} ${Buffer.from(text).toString('base64')}\n`);
    return done;
  }

  private onData(data: string): void {
    this.buffered += data;
    const m = /hr-begin (\d+)\r?\n([\s\S]*?)hr-end \1 (\d+)\r?\n/.exec(this.buffered);
    if (!m) return;
    this.buffered = this.buffered.slice(m.index + m[0].length);
    // Answers to requests given up on (open's retries) are dropped.
    if (this.pending?.id === Number(m[1])) {
      const { resolve } = this.pending;
      this.pending = undefined;
      resolve({ output: Buffer.from(m[2].replace(/\s/g, ''), 'base64'), code: Number(m[3]) });
    }
    this.onData('');
  }

  private fail(err: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }
}

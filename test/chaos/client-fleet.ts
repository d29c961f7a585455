/**
 * The chaos test's client processes: forks them (chaos-client.ts), each with its share of the simulated
 * clients and its own records file; stops them and reads back what every client was told.
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ClientProcessConfig, ClientSpec } from './chaos-client';
import type { CycleRecord } from './history-checker';

const CLIENT_MAIN = path.join(__dirname, 'chaos-client.js');

export class ClientFleet {
  private readonly children: { child: ChildProcess; out: string; exited: Promise<number | null> }[];

  /**
   * Deals `specs` round-robin over `processes` processes, so that each mixes hosts, VMs and kinds. With
   * several addresses (cluster members, or lists of them), process i talks to `address[i % length]`.
   */
  constructor(address: string | readonly string[], specs: ClientSpec[], processes: number, seed: number, dir: string) {
    const addresses = typeof address === 'string' ? [address] : address;
    this.children = Array.from({ length: processes }, (_, i) => {
      const out = path.join(dir, `client-${i}.jsonl`);
      const config: ClientProcessConfig = {
        address: addresses[i % addresses.length],
        clients: specs.filter((_, k) => k % processes === i),
        seed: seed + i,
        out,
      };
      const child = fork(CLIENT_MAIN, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      return { child, out, exited };
    });
  }

  /** Processes that exited before being asked to (a crashed client fails the test). */
  crashed(): number {
    return this.children.filter(({ child }) => child.exitCode !== null || child.signalCode !== null).length;
  }

  /**
   * Asks every process to stop (waits end, holders release) and returns all records. Throws when one
   * exits with an error or does not stop within `timeoutMs` (it is then killed).
   */
  async stop(timeoutMs: number): Promise<CycleRecord[]> {
    const codes = await Promise.all(
      this.children.map(async ({ child, exited }) => {
        if (child.connected) child.send('stop');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }),
    );
    const bad = codes.findIndex((c) => c !== 0);
    if (bad >= 0) throw new Error(`chaos client process ${bad} exited with ${codes[bad] ?? 'a signal'}`);
    return this.children.flatMap(({ out }) =>
      fs.existsSync(out)
        ? fs
            .readFileSync(out, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as CycleRecord)
        : [],
    );
  }

  /** Synchronous last resort for a failed test. */
  killAll(): void {
    for (const { child } of this.children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

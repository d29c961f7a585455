/**
 * Placement from libvirt: the domain list (`virsh list`), then its lifecycle events from one long-running
 * `virsh event --loop --event lifecycle` child, restarted (after a fresh listing, since events may have been
 * missed meanwhile) whenever it ends. libvirt 9.0's virsh refuses `--all` together with `--event`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as readline from 'node:readline';
import { promisify } from 'node:util';
import { Backoff } from '../../common/util/backoff';
import type { Logger } from '../../common/util/log';
import type { PlacedVm, PlacementEvent, PlacementSource } from '../domain/placement/types';
import { lifecycleEvent, parseDomainList, parseLifecycleLine } from '../domain/placement/virsh-events';

const run = promisify(execFile);

export interface LibvirtSourceOptions {
  /** libvirt connection URI, e.g. qemu:///system. */
  uri: string;
  /** Default `virsh` from PATH. */
  virsh?: string;
  /** First pause before a dead event child is restarted; it doubles while restarts fail, up to 30 s. Default 1 s. */
  restartDelayMs?: number;
  log: Logger;
}

export class LibvirtSource implements PlacementSource {
  readonly kind = 'libvirt';
  private child: ChildProcess | undefined;
  private stopped = false;
  private restart: NodeJS.Timeout | undefined;
  private emit: (event: PlacementEvent) => void = () => {};
  /** Names to UUIDs of the last listing: an event names the domain only, and an undefined one is gone. */
  private uuids = new Map<string, string>();
  /** Lines are handled one after another: a lookup must not let a later event overtake an earlier one. */
  private lines: Promise<void> = Promise.resolve();
  /** While libvirtd is down, virsh event ends at once: the restarts slow down rather than spin. */
  private readonly restarts: Backoff;

  constructor(private readonly o: LibvirtSourceOptions) {
    this.restarts = new Backoff({ initialMs: o.restartDelayMs ?? 1_000 });
  }

  /** @throws when virsh cannot list the domains (libvirtd not running, wrong URI) */
  async start(emit: (event: PlacementEvent) => void): Promise<void> {
    this.emit = emit;
    // Listening first, so that nothing between the listing and the events is missed.
    this.listen();
    await this.list();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restart);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.kill('SIGTERM');
    });
  }

  private virsh(...args: string[]): Promise<string> {
    return run(this.o.virsh ?? 'virsh', ['-c', this.o.uri, ...args], { encoding: 'utf8' }).then((r) => r.stdout);
  }

  private async list(): Promise<void> {
    const [all, running, paused] = await Promise.all([
      this.virsh('list', '--all', '--uuid', '--name'),
      this.virsh('list', '--uuid', '--state-running'),
      this.virsh('list', '--uuid', '--state-paused'),
    ]);
    const ids = (out: string) => new Set(out.split('\n').map((l) => l.trim().toLowerCase()));
    const [up, halted] = [ids(running), ids(paused)];
    const vms = parseDomainList(all).map(({ uuid, name }): PlacedVm => ({
      uuid,
      name,
      state: up.has(uuid) ? 'running' : halted.has(uuid) ? 'paused' : 'stopped',
    }));
    this.uuids = new Map(vms.map((v) => [v.name, v.uuid]));
    this.emit({ type: 'listed', vms });
  }

  private listen(): void {
    const child = spawn(this.o.virsh ?? 'virsh', ['-c', this.o.uri, 'event', '--loop', '--event', 'lifecycle'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    // A coordinator that exits without stop() (a failed start, process.exit) must not leave it behind.
    const orphan = () => child.kill('SIGTERM');
    process.once('exit', orphan);
    child.once('close', () => process.off('exit', orphan));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-2_000)));
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lines = this.lines.then(() => this.onLine(line));
    });
    child.on('error', (e) => this.o.log.warn('cannot run virsh event', { error: e }));
    child.on('close', (code, signal) => {
      if (this.stopped) return;
      this.o.log.warn('virsh event ended: restarting it', { code, signal, stderr: stderr.trim() });
      this.restart = setTimeout(() => {
        if (this.stopped) return;
        this.listen();
        this.lines = this.lines
          .then(() => this.list())
          .then(() => this.restarts.reset())
          .catch((e) => this.o.log.warn('cannot list the libvirt domains', { error: e as Error }));
      }, this.restarts.next());
    });
  }

  private async onLine(line: string): Promise<void> {
    // virsh writes an empty line after each event, and nothing else but events.
    if (line.trim() === '') return;
    try {
      const parsed = parseLifecycleLine(line);
      const uuid = this.uuids.get(parsed.domain) ?? (await this.virsh('domuuid', parsed.domain)).trim().toLowerCase();
      const event = lifecycleEvent(parsed, uuid);
      if (event === 'refresh') return await this.list();
      if (!event) return;
      if (event.type === 'removed') this.uuids.delete(parsed.domain);
      else this.uuids.set(parsed.domain, uuid);
      this.emit(event);
    } catch (e) {
      this.o.log.warn('ignoring a libvirt event that cannot be read', { line, error: e as Error });
    }
  }
}

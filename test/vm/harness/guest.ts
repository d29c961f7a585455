/**
 * A booted test guest, whichever way it was started (qemu-guest.ts: QEMU directly; libvirt-guest.ts: a
 * libvirt domain): what a test asks of it (run a shell line, read a file, its console) and what every
 * guest is given (the image, its own files and disks, the host ports it may reach).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../../helpers/coordinator-process';
import { CommandChannel, type CommandResult } from './command-channel';
import { ConsoleLog, GuestFailure } from './console-log';
import { READY_MARKER } from './guest-init';
import { guestImage } from './guest-image';
import { writeGuestInitramfs } from './guest-overlay';

export interface GuestDisk {
  /** A qcow2 image (disk.ts makes them); the guest sees the disks as vda, vdb, ... in this order. */
  path: string;
  /** Where /init mounts its ext4 filesystem; unset: not mounted. */
  mountPoint?: string;
}

export interface GuestSpec {
  /** Default: a random UUID. The guest's SMBIOS system UUID (what the agent takes as its identity). */
  uuid?: string;
  /** Default: hr-test-<random>. libvirt's domain name, and the name in messages. */
  name?: string;
  disks?: GuestDisk[];
  /** Files placed in the guest, guest path → contents (agent.yaml at /etc/headroom/agent.yaml starts the agent). */
  files?: Record<string, string | Buffer>;
  /** Loopback ports of the host the guest may reach, as 10.0.2.100:PORT (user-network.ts). */
  hostPorts?: number[];
  /** Default 768. */
  memoryMiB?: number;
  /** Appended to the kernel command line. */
  kernelArgs?: string;
  /** How long to wait for the guest's ready line; default 180 s (TCG on a busy machine). */
  bootTimeoutMs?: number;
}

/** Everything a backend needs to start a guest, prepared in its own directory. */
export interface PreparedGuest {
  uuid: string;
  name: string;
  dir: string;
  kernel: string;
  initramfs: string;
  cmdline: string;
  /** Virtio device names (vda, ...) of spec.disks, in order. */
  disks: Array<GuestDisk & { device: string }>;
  consolePath: string;
  commandSocket: string;
  hostPorts: number[];
  memoryMiB: number;
  bootTimeoutMs: number;
}

const DEFAULT_BOOT_TIMEOUT_MS = 180_000;

/**
 * A new temporary directory that libvirt's QEMU (user libvirt-qemu) can reach: for disks and backup
 * targets of libvirt guests (tempDir's are private to root).
 */
export function vmTempDir(prefix = 'headroom-vm-'): string {
  const dir = tempDir(prefix);
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Builds (or takes from the cache) the image and writes this guest's initramfs. */
export function prepareGuest(spec: GuestSpec): PreparedGuest {
  const image = guestImage();
  const name = spec.name ?? `hr-test-${randomBytes(4).toString('hex')}`;
  // libvirt's QEMU writes the console and binds the channel socket here.
  const dir = vmTempDir(`${name}-`);
  // The guest's kernel names virtio disks in the order of their PCI slots, which is the order given.
  const disks = (spec.disks ?? []).map((d, i) => ({ ...d, device: `vd${String.fromCharCode(97 + i)}` }));
  const initramfs = path.join(dir, 'initramfs.cpio');
  writeGuestInitramfs(image.initramfs, dir, initramfs, {
    files: spec.files ?? {},
    mounts: disks.filter((d) => d.mountPoint).map((d) => ({ device: d.device, mountPoint: d.mountPoint! })),
  });
  fs.chmodSync(initramfs, 0o644);
  return {
    uuid: spec.uuid ?? randomUUID(),
    name,
    dir,
    kernel: image.kernel,
    initramfs,
    cmdline: `console=ttyS0 panic=-1 quiet ${spec.kernelArgs ?? ''}`.trim(),
    disks,
    consolePath: path.join(dir, 'console.log'),
    commandSocket: path.join(dir, 'command.sock'),
    hostPorts: spec.hostPorts ?? [],
    memoryMiB: spec.memoryMiB ?? 768,
    bootTimeoutMs: spec.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS,
  };
}

export class Guest {
  readonly console: ConsoleLog;
  private readonly channel: CommandChannel;
  /** Once destroy() was called: a second call waits for the first. */
  private destroyed?: Promise<void>;

  /** `stopped()` says whether the guest has stopped; `destroy` stops it and removes what the backend made. */
  constructor(
    readonly prepared: PreparedGuest,
    private readonly stopped: () => boolean,
    private readonly destroyBackend: () => Promise<void>,
  ) {
    this.console = new ConsoleLog(prepared.consolePath);
    this.channel = new CommandChannel(prepared.commandSocket);
  }

  get uuid(): string {
    return this.prepared.uuid;
  }

  get name(): string {
    return this.prepared.name;
  }

  /** Waits for the ready line and the command channel; on failure, destroys the guest and throws with its console. */
  async ready(): Promise<void> {
    try {
      await this.console.waitFor(READY_MARKER, this.prepared.bootTimeoutMs, this.stopped);
      await this.channel.open(this.prepared.bootTimeoutMs);
    } catch (err) {
      await this.destroy();
      throw err instanceof GuestFailure ? err : this.console.failure(`guest ${this.name}: ${(err as Error).message}`);
    }
  }

  /** Runs `text` with the guest's sh (stdin /dev/null); output is stdout and stderr. */
  run(text: string): Promise<CommandResult> {
    return this.channel.run(text);
  }

  /** Runs `text`, returns its output as text; throws with the output and the console's tail when it exits non-zero. */
  async sh(text: string): Promise<string> {
    const r = await this.run(text);
    const output = r.output.toString('utf8');
    if (r.code !== 0) throw this.console.failure(`in guest ${this.name}, \`${text}\` exited ${r.code}: ${output}`);
    return output;
  }

  /** A file's contents, read in the guest. */
  async readFile(file: string): Promise<Buffer> {
    const r = await this.run(`cat '${file.replace(/'/g, `'\\''`)}'`);
    if (r.code !== 0) throw new Error(`in guest ${this.name}, cannot read ${file}: ${r.output.toString('utf8')}`);
    return r.output;
  }

  /** Stops the guest and removes its copy of the image (about 100 MiB); its console log stays for reading. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      this.channel.close();
      await this.destroyBackend();
      fs.rmSync(this.prepared.initramfs, { force: true });
    })();
    return this.destroyed;
  }
}

/**
 * Registers an afterEach hook that appends the console of each of `guests()` to the error of a failed
 * test: what the guest said is usually the explanation.
 */
export function attachConsolesOnFailure(guests: () => Iterable<Guest | undefined>): void {
  afterEach(function () {
    const err = this.currentTest?.state === 'failed' ? this.currentTest.err : undefined;
    if (!err) return;
    // The stack, not the message: mocha prints the whole stack, but only part of a message it diffs.
    for (const g of guests()) {
      if (g) err.stack = `${err.stack ?? err.message}\n\nguest ${g.name}: ${g.console.describe()}`;
    }
  });
}

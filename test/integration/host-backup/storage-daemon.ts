/**
 * A real qemu-storage-daemon for the hypervisor tests: qcow2 disks as named block nodes, a QMP socket,
 * and each disk exported over NBD (on a unix socket) so that the test can write known blocks into it and
 * read its whole content back while the daemon holds the image lock — as a guest would, through the node
 * the backups read and the bitmaps watch. A second QMP monitor lets a test watch the block jobs (QEMU's own
 * counters) while the backup holds the first: a QMP socket serves one client at a time.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { type RunningChild, spawnChild } from '../../../common/backup-run/child-process';
import type { CopyControlChannel } from '../../../host-backup/copy-control-channel';
import { QmpClient } from '../../../host-backup/hypervisor/qmp-client';
import { CTL_MAIN } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { requireTool } from '../../helpers/require-tool';

const run = promisify(execFile);

export interface DaemonDisk {
  name: string;
  size: number;
  /** Bytes of data written at its start when the image is created (a copy that takes a while); default none. */
  filled?: number;
}

export class StorageDaemon {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  readonly qmpSocket: string;
  readonly nbdSocket: string;
  readonly observerSocket: string;

  constructor(
    readonly dir: string,
    readonly disks: readonly DaemonDisk[],
  ) {
    this.qmpSocket = path.join(dir, 'qmp.sock');
    this.nbdSocket = path.join(dir, 'nbd.sock');
    this.observerSocket = path.join(dir, 'qmp-observer.sock');
  }

  imagePath(disk: string): string {
    return path.join(this.dir, `${disk}.qcow2`);
  }

  /** Creates the images (first start only) and starts the daemon; resolves once QMP answers. */
  async start(): Promise<void> {
    requireTool('qemu-storage-daemon', 'qemu-system-common');
    requireTool('qemu-img', 'qemu-utils');
    requireTool('qemu-io', 'qemu-utils');
    for (const d of this.disks) {
      if (fs.existsSync(this.imagePath(d.name))) continue;
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', this.imagePath(d.name), String(d.size)]);
      if (d.filled) await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${d.filled}`, this.imagePath(d.name)]);
    }
    fs.rmSync(this.qmpSocket, { force: true });
    fs.rmSync(this.nbdSocket, { force: true });
    fs.rmSync(this.observerSocket, { force: true });
    const args: string[] = [];
    for (const d of this.disks) {
      args.push('--blockdev', `driver=file,node-name=${d.name}-file,filename=${this.imagePath(d.name)}`);
      args.push('--blockdev', `driver=qcow2,node-name=${d.name},file=${d.name}-file`);
    }
    args.push('--nbd-server', `addr.type=unix,addr.path=${this.nbdSocket}`);
    for (const d of this.disks)
      args.push('--export', `type=nbd,id=export-${d.name},node-name=${d.name},name=${d.name},writable=on`);
    args.push('--chardev', `socket,id=qmp0,path=${this.qmpSocket},server=on,wait=off`, '--monitor', 'chardev=qmp0');
    args.push(
      '--chardev',
      `socket,id=qmp1,path=${this.observerSocket},server=on,wait=off`,
      '--monitor',
      'chardev=qmp1',
    );
    const child = spawn('qemu-storage-daemon', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let exitedEarly = false;
    void this.exited.then(() => (exitedEarly = true));
    await waitFor(() => {
      if (exitedEarly) throw new Error(`qemu-storage-daemon exited: ${stderr}`);
      return fs.existsSync(this.qmpSocket) && fs.existsSync(this.nbdSocket) && fs.existsSync(this.observerSocket);
    }, 10_000);
  }

  connect(): Promise<QmpClient> {
    return QmpClient.connect(this.qmpSocket);
  }

  /** The second monitor, for watching what the backup on the first does. */
  observe(): Promise<QmpClient> {
    return QmpClient.connect(this.observerSocket);
  }

  /** A clean stop: QMP `quit`, so persistent bitmaps are written to the images. */
  async stop(): Promise<void> {
    if (!this.child) return;
    const client = await this.connect();
    await client.execute('quit').catch(() => {});
    client.close();
    await this.exited;
    this.child = undefined;
  }

  /** An unclean stop: SIGKILL, as a host crash or the OOM killer would. */
  async kill(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
  }

  private nbd(disk: string): string {
    return `nbd+unix:///${disk}?socket=${this.nbdSocket}`;
  }

  /** Writes `length` bytes of `pattern` at `offset`, through the daemon (qemu-io over NBD). */
  async write(disk: string, offset: number, length: number, pattern: number): Promise<void> {
    await run('qemu-io', ['-f', 'raw', this.nbd(disk), '-c', `write -P ${pattern} ${offset} ${length}`]);
  }

  /** The disk's whole content now, as the guest sees it (read through the daemon). */
  async read(disk: string): Promise<Buffer> {
    const out = path.join(this.dir, `read-${disk}-${process.pid}.raw`);
    try {
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', this.nbd(disk), out]);
      return fs.readFileSync(out);
    } finally {
      fs.rmSync(out, { force: true });
    }
  }
}

/** The ranges allocated in the top layer of a qcow2 file (not in its backing files), merged. */
export async function ownClusters(file: string): Promise<Array<[number, number]>> {
  const { stdout } = await run('qemu-img', ['map', '--output=json', '-U', file]);
  const entries = JSON.parse(stdout) as Array<{ start: number; length: number; depth: number; data: boolean }>;
  const ranges: Array<[number, number]> = [];
  for (const e of entries) {
    if (e.depth !== 0 || !e.data) continue;
    const last = ranges[ranges.length - 1];
    if (last && last[0] + last[1] === e.start) last[1] += e.length;
    else ranges.push([e.start, e.length]);
  }
  return ranges;
}

/** A restored image's content as raw bytes. */
export async function imageBytes(file: string, format: 'qcow2' | 'raw'): Promise<Buffer> {
  if (format === 'raw') return fs.readFileSync(file);
  const out = `${file}.raw`;
  try {
    await run('qemu-img', ['convert', '-f', format, '-O', 'raw', file, out]);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/**
 * `headroomctl qmp-backup` of every disk of `daemon` into `target`, as host-backup --driver qmp runs it: its
 * own process group (the guarded run's spawnChild), following host-backup's copy control `channel`.
 */
export function spawnQmpBackup(
  daemon: StorageDaemon,
  vm: string,
  target: string,
  channel: CopyControlChannel,
): RunningChild {
  return spawnChild(
    [process.execPath, CTL_MAIN, 'qmp-backup', '--vm', vm, '--qmp-socket', daemon.qmpSocket, '--target', target],
    { stdio: 'inherit', env: { ...process.env, HEADROOM_LOG: 'warn', ...channel.env() } },
  );
}

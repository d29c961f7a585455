/**
 * The few qemu-img calls backups and restores need, run as child processes with their stderr in the
 * error: create a backup target (backed by its parent for an incremental), read an image's backing chain,
 * and flatten a chain into one standalone image.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';

export class QemuImgError extends Error {
  override readonly name = 'QemuImgError';
}

function run(args: readonly string[], binary: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const why =
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? `${binary} not found (Debian package qemu-utils)`
            : stderr.trim() || err.message;
        reject(new QemuImgError(`qemu-img ${args[0]}: ${why}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

export interface ChainEntry {
  filename: string;
  format: string;
  virtualSize: number;
  /** As written in the image's header (may be relative to the image's directory). */
  backingFilename?: string;
}

export class QemuImg {
  constructor(private readonly binary = 'qemu-img') {}

  /**
   * Creates an empty qcow2 image of `size` bytes; with `backing`, backed by that qcow2 file, named by
   * its path relative to the new image so that the pair can be moved together.
   */
  async createQcow2(file: string, size: number, backing?: string): Promise<void> {
    const args = ['create', '-q', '-f', 'qcow2'];
    if (backing !== undefined) args.push('-b', path.relative(path.dirname(file), backing), '-F', 'qcow2');
    await run([...args, file, String(size)], this.binary);
  }

  /** The image and its backing files, top first. */
  async backingChain(file: string): Promise<ChainEntry[]> {
    const out = await run(['info', '--output=json', '--backing-chain', '-U', file], this.binary);
    const list = JSON.parse(out) as Array<Record<string, unknown>>;
    return list.map((e) => ({
      filename: String(e.filename),
      format: String(e.format),
      virtualSize: Number(e['virtual-size']),
      backingFilename: typeof e['backing-filename'] === 'string' ? e['backing-filename'] : undefined,
    }));
  }

  /** Writes the data `top` shows (through its backing chain) into a new standalone image. */
  async convert(top: string, output: string, format: 'qcow2' | 'raw'): Promise<void> {
    await run(['convert', '-q', '-f', 'qcow2', '-O', format, top, output], this.binary);
  }
}

/**
 * Guest disks: qcow2 images holding an ext4 filesystem made on the host with the given files in it
 * (mkfs.ext4 -d), as a guest's data disk or a backup's source; or plain blocks, for a guest to write at
 * known offsets or a backup to copy.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { requireTool } from '../../helpers/require-tool';

export interface DiskOptions {
  sizeMiB: number;
  /** Files in the filesystem, path relative to its root → contents. */
  files?: Record<string, string | Buffer>;
  /** Directories of the host copied in (modes kept), path relative to its root → host directory. */
  dirs?: Record<string, string>;
}

/**
 * Creates `qcow2` (its directory must exist; for libvirt guests, one from vmTempDir) with an ext4
 * filesystem holding `files`. Throws naming a missing package.
 */
export function makeExt4Disk(qcow2: string, options: DiskOptions): string {
  requireTool('mkfs.ext4', 'e2fsprogs');
  requireTool('qemu-img', 'qemu-utils');
  const work = fs.mkdtempSync(path.join(path.dirname(qcow2), '.disk-'));
  try {
    const tree = path.join(work, 'tree');
    fs.mkdirSync(tree);
    for (const [file, contents] of Object.entries(options.files ?? {})) {
      fs.mkdirSync(path.join(tree, path.dirname(file)), { recursive: true });
      fs.writeFileSync(path.join(tree, file), contents);
    }
    for (const [dir, from] of Object.entries(options.dirs ?? {}))
      fs.cpSync(from, path.join(tree, dir), { recursive: true });
    const raw = path.join(work, 'disk.raw');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, raw, `${options.sizeMiB}M`], { stdio: 'pipe' });
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2], { stdio: 'pipe' });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return qcow2;
}

/**
 * Creates `qcow2` of `sizeMiB` with no filesystem: zeros (unallocated), or `fillByte` in every byte
 * (allocated: a full backup has all of it to copy). Throws naming a missing package.
 */
export function makeBlockDisk(qcow2: string, sizeMiB: number, fillByte?: number): string {
  requireTool('qemu-img', 'qemu-utils');
  if (fillByte === undefined) {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, `${sizeMiB}M`], { stdio: 'pipe' });
    return qcow2;
  }
  const raw = `${qcow2}.raw`;
  const fd = fs.openSync(raw, 'w');
  try {
    const mib = Buffer.alloc(1024 * 1024, fillByte);
    for (let i = 0; i < sizeMiB; i++) fs.writeSync(fd, mib);
  } finally {
    fs.closeSync(fd);
  }
  try {
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2], { stdio: 'pipe' });
  } finally {
    fs.rmSync(raw, { force: true });
  }
  return qcow2;
}

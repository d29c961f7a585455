/**
 * newc cpio archives, the initramfs format, written by busybox's cpio (busybox-static is needed anyway).
 * The kernel unpacks archives laid end to end, so a guest's own files are a second archive appended to
 * the common image.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Debian's busybox-static: the guest's userland, and the host's cpio and nc. */
export const BUSYBOX = '/usr/bin/busybox';

/** Every path under `dir`, relative, directories before what they hold. */
function walk(dir: string, prefix = '.'): string[] {
  return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((e) => {
    const rel = `${prefix}/${e.name}`;
    return e.isDirectory() ? [rel, ...walk(dir, rel)] : [rel];
  });
}

/** Writes the tree under `dir` as a newc archive to `out`. */
export function packCpio(dir: string, out: string): void {
  execFileSync(BUSYBOX, ['cpio', '-o', '-H', 'newc', '-F', out], { cwd: dir, input: walk(dir).join('\n') + '\n' });
}

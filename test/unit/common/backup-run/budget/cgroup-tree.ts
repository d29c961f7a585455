/**
 * Fake cgroup trees in a temporary directory, for the adapters' unit tests: plain directories and files
 * standing in for cgroupfs, where writing a control file just replaces its contents.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RemoveDir } from '../../../../../common/backup-run/budget/cgroup-dir';

/** Writes `files` (paths relative to `root`; a path ending in "/" is a directory) and returns `root`. */
export function tree(root: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(root, rel);
    if (rel.endsWith('/')) {
      fs.mkdirSync(file, { recursive: true });
      continue;
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
  return root;
}

/** A /sys/block with one virtio disk (254:0, mq-deadline) and a loop device, which has no `device` link. */
export function fakeSysBlock(root: string): string {
  return tree(path.join(root, 'sys-block'), {
    'vda/device/': '',
    'vda/dev': '254:0\n',
    'vda/queue/scheduler': 'none [mq-deadline] kyber bfq\n',
    'loop0/dev': '7:0\n',
  });
}

export const read = (file: string) => fs.readFileSync(file, 'utf8');

/** cgroupfs removes a group's control files with it; a plain directory needs them removed first. */
export const removeTree: RemoveDir = (p) => fs.rmSync(p, { recursive: true });

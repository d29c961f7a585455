/**
 * Writing a file so that a reader, or a crash, sees the old content or the new, never a part: keys and
 * certificates, catalog manifests, hold state, the installed fsfreeze hook.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Writes `text` to `file` with `mode`: a temporary file beside it, created with that mode from the start
 * (a secret is never world-readable for an instant), fsynced, renamed over the target, and the directory
 * fsynced. The temporary name starts with a dot, so a glob such as fsfreeze-hook's "dir/*" never runs or
 * reads a half-written file.
 */
export function writeFileAtomic(file: string, text: string, mode: number): void {
  writeFilesAtomic([{ file, text, mode }]);
}

/**
 * Writes files that belong together (a key and its certificate) as writeFileAtomic does, but renames
 * them only once all of them are written and fsynced: a failure while writing leaves every old file in
 * place, and the renames follow one another with no I/O wait between them.
 */
export function writeFilesAtomic(files: readonly { file: string; text: string; mode: number }[]): void {
  const staged = files.map(({ file, text, mode }) => {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    // A leftover from a crash may have other permissions: remove it, and create ours exclusively.
    fs.rmSync(tmp, { force: true });
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    // The umask may have narrowed the mode given to open.
    fs.chmodSync(tmp, mode);
    return { tmp, file };
  });
  for (const { tmp, file } of staged) fs.renameSync(tmp, file);
  for (const dir of new Set(staged.map(({ file }) => path.dirname(file)))) {
    const dirFd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  }
}

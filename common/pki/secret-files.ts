/**
 * Writing keys and certificates safely, for the coordinator's CA and the enrolling agent alike: private
 * directories are 0700, secrets 0600 from the moment the file exists, and every file is written to a
 * temporary name, fsynced and renamed, so that a crash never leaves half a key.
 */
import * as fs from 'node:fs';

/** Creates `dir` (and parents) with mode 0700; tightens an existing one. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
}

/**
 * Writes `text` to `file` with `mode` (0600 for secrets), atomically: a temporary file created with that
 * mode from the start (never world-readable for an instant), fsynced, then renamed over the target.
 */
export function writeFileAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  // A leftover from a crash may have other permissions: remove it, and create ours exclusively.
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

export const SECRET_MODE = 0o600;
export const PUBLIC_MODE = 0o644;

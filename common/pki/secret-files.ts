/**
 * Writing keys and certificates safely, for the coordinator's CA and the enrolling agent alike: private
 * directories are 0700, secrets 0600 from the moment the file exists (written with ../atomic-file.ts, so
 * that a crash never leaves half a key).
 */
import * as fs from 'node:fs';

/** Creates `dir` (and parents) with mode 0700; tightens an existing one. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
}

export const SECRET_MODE = 0o600;
export const PUBLIC_MODE = 0o644;

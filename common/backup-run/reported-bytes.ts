/**
 * A figure the command itself reports for the bytes it wrote: it writes a decimal number into the file
 * named by HEADROOM_BYTES_FILE. It is preferred over the kernel's I/O accounting of the command's tree
 * (tree-io.ts), which cannot see bytes written by another process (QEMU, for qmp-backup) or sent over the
 * network (restic to a remote repository).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const BYTES_FILE_ENV = 'HEADROOM_BYTES_FILE';

export class ReportedBytes {
  private constructor(
    private readonly dir: string,
    readonly file: string,
  ) {}

  /** A fresh private directory for the file; undefined when none can be made (then only the kernel's figure counts). */
  static create(): ReportedBytes | undefined {
    try {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-bytes-'));
      return new ReportedBytes(dir, path.join(dir, 'bytes'));
    } catch {
      return undefined;
    }
  }

  /** What the command wrote into the file, when it wrote a whole number; removes the file. */
  take(): number | undefined {
    let text: string | undefined;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      text = undefined;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    const n = text !== undefined && /^\s*\d+\s*$/.test(text) ? Number(text) : undefined;
    return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
  }
}

/** For a command that knows its figure: writes it to `file` (its HEADROOM_BYTES_FILE), if it was given one. */
export function reportBytes(file: string | undefined, bytes: number): void {
  if (file) fs.writeFileSync(file, String(bytes));
}

/**
 * A guest's serial console, as QEMU writes it to a file: waiting for a line (not for a time), and its
 * last lines for failure messages.
 */
import * as fs from 'node:fs';

/** A guest did not come up, or failed at something the harness asked of it; the message ends with its console. */
export class GuestFailure extends Error {}

export class ConsoleLog {
  constructor(readonly file: string) {}

  text(): string {
    try {
      return fs.readFileSync(this.file, 'utf8');
    } catch {
      return '';
    }
  }

  /** The last `lines` lines, for error messages, without the firmware's terminal escapes (one clears the screen). */
  tail(lines = 40): string {
    return this.text()
      .replace(/\x1b(\[[0-9;?]*[A-Za-z]|.)/g, '')
      .split(/\r?\n/)
      .slice(-lines)
      .join('\n');
  }

  /**
   * Resolves when a console line contains `marker`. Rejects when `gone()` says the guest stopped, or after
   * `timeoutMs`, with the console's tail in the message.
   */
  async waitFor(marker: string, timeoutMs: number, gone: () => boolean = () => false): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.text().includes(marker)) return;
      if (gone()) throw this.failure(`the guest stopped before its console said "${marker}"`);
      if (Date.now() > until) throw this.failure(`the guest's console did not say "${marker}" within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  failure(what: string): GuestFailure {
    return new GuestFailure(`${what}; ${this.describe()}`);
  }

  /** "the serial console (FILE) ends with:" and its tail. */
  describe(): string {
    return `the serial console (${this.file}) ends with:\n${this.tail()}`;
  }
}

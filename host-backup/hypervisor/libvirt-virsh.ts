/**
 * The libvirt driver's only way to libvirt: `virsh -c URI …` as a child process (no libvirt binding for
 * Node is worth taking), in the C locale so that its text output reads the same everywhere. Failures carry
 * virsh's own message.
 */
import { execFile } from 'node:child_process';

/** libvirt (or virsh) refused or failed; the message is virsh's, with the command. */
export class VirshError extends Error {
  override readonly name = 'VirshError';
  constructor(
    readonly args: readonly string[],
    /** virsh's own error text, without "error: ". */
    readonly detail: string,
  ) {
    super(`virsh ${args.slice(0, 2).join(' ')}: ${detail}`);
  }
}

/** What the libvirt QEMU driver answers when nobody gives a connection URI: the system daemon. */
export const DEFAULT_LIBVIRT_URI = 'qemu:///system';

export class Virsh {
  constructor(
    readonly uri: string = DEFAULT_LIBVIRT_URI,
    private readonly binary = 'virsh',
  ) {}

  /**
   * Runs `virsh -c URI ARGS…`; resolves to its stdout. Throws VirshError. virsh runs in a process group of
   * its own: a signal to ours (host-backup stopping its driver child, Ctrl-C) must not kill the virsh call in
   * flight, as the run then needs virsh to abort libvirt's job and delete its checkpoint.
   */
  run(args: readonly string[]): Promise<string> {
    // Node's typings leave `detached` out of execFile's options, which it hands to spawn as they are.
    const options = {
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, LC_ALL: 'C' },
      encoding: 'utf8' as const,
      detached: true,
    };
    return new Promise((resolve, reject) => {
      execFile(this.binary, ['-q', '-c', this.uri, ...args], options, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const why =
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? `${this.binary} not found (Debian package libvirt-clients)`
            : stderr
                .split('\n')
                .map((l) => l.replace(/^error: /, '').trim())
                .filter(Boolean)
                .join('; ') || err.message;
        reject(new VirshError(args, why));
      });
    });
  }

  /**
   * A QMP command through libvirt (`qemu-monitor-command`), for what libvirt has no API for. libvirt marks
   * the domain tainted ("custom-monitor") the first time. Throws VirshError with QEMU's error.
   */
  async qmp<T>(domain: string, execute: string, args?: Record<string, unknown>): Promise<T> {
    const command = JSON.stringify(args ? { execute, arguments: args } : { execute });
    const out = await this.run(['qemu-monitor-command', domain, command]);
    const reply = JSON.parse(out) as { return?: T; error?: { desc?: string } };
    if (reply.error) throw new VirshError(['qemu-monitor-command', execute], reply.error.desc ?? 'QMP error');
    return reply.return as T;
  }
}

/** `key: value` lines (dominfo, domblkinfo) or `key=value` ones (--rawstats), keys as printed. */
export function parseFields(text: string, separator: ':' | '='): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf(separator);
    if (at > 0) fields.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  return fields;
}

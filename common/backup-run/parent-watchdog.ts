/**
 * The watchdog that stops a command's process group when the Node process that started it dies without
 * stopping it (SIGKILL, the OOM killer): without it the command would run on in its own group after the
 * coordinator had handed its slot to someone else. Owns the /bin/sh snippet the command is started
 * through, and our end of the pipe that the watchdog holds.
 *
 * How it works: `/bin/sh` is started as the leader of a new process group with a socket to us on fd 3.
 * It forks the watchdog into the background of the group (a subshell that exits at once, so the watchdog
 * is nobody's child: the command never sees an extra child to wait for), writes the watchdog's pid to fd 3,
 * then `exec`s the command with fd 3 closed. The command therefore keeps the shell's pid, leads the group,
 * is our direct child (its exit status and signal reach us exactly as before) and has the signal
 * dispositions it would have had without us. The watchdog ignores the signals a group gets (our stop and
 * forwarded signals must not kill the guard) and blocks reading fd 3: a line from us means "stand down";
 * end of file means we died, and it sends SIGTERM to the group, then SIGKILL after the kill grace. Being a
 * member of the group pins the group id, so it can never signal an unrelated group that reused the number.
 * It costs one shell exec and two forks at start (about 1.5 ms) and a sleeping shell while the command runs.
 */
import type { Socket } from 'node:net';

/** What the watchdog ignores: the signals our stop, a forwarded Ctrl-C or a `kill 0` of the command send to the group. */
const IGNORED_SIGNALS = 'HUP INT QUIT PIPE ALRM TERM USR1 USR2 TSTP';

/**
 * Run by `/bin/sh -c` with `$1` the kill grace in seconds (fractional), `$2` the same rounded up (for a
 * `sleep` without fractions) and the command's argv after them. The argv is only ever expanded as "$@":
 * never parsed by the shell. If the watchdog cannot be started, neither is the command (exit 126).
 */
const SCRIPT = [
  `(trap '' ${IGNORED_SIGNALS}`,
  `{ cd /; if read -r _ <&3; then exit 0; fi; kill -s TERM 0; sleep "$1" || sleep "$2"; kill -s KILL 0; } </dev/null >/dev/null 2>&1 &`,
  `echo "$!" >&3) || exit 126`,
  `shift 2`,
  `exec "$@" 3<&-`,
].join('\n');

/** `$0` of the shell, shown in its messages should the final exec fail after all. */
const SHELL_NAME = 'headroom';

/** The file and arguments to spawn (with fd 3 a pipe, in a new process group) to run `argv` under a watchdog. */
export function watchdogCommand(argv: readonly string[], killGraceMs: number): { file: string; args: string[] } {
  const seconds = Math.max(0, killGraceMs) / 1000;
  return { file: '/bin/sh', args: ['-c', SCRIPT, SHELL_NAME, String(seconds), String(Math.ceil(seconds)), ...argv] };
}

/** Our end of the watchdog's pipe: learns its pid, and tells it to stand down. */
export class WatchdogChannel {
  private watchdogPid: number | undefined;
  private dismissed = false;
  /** Resolves once the watchdog's pid is known, or it is clear there will be none (the pipe closed). */
  readonly ready: Promise<void>;
  /** Resolves once the pipe is closed at both ends: the watchdog has exited (or never started). */
  private readonly closed: Promise<void>;

  constructor(private readonly socket: Socket | null | undefined) {
    if (!socket) {
      this.ready = this.closed = Promise.resolve();
      return;
    }
    // The watchdog must not keep the process alive, nor a write after its death crash it.
    socket.unref();
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.ready = new Promise((resolve) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        const line = text.indexOf('\n');
        if (line < 0) return;
        const pid = Number(text.slice(0, line));
        if (Number.isSafeInteger(pid) && pid > 0) this.watchdogPid = pid;
        resolve();
      });
      socket.once('close', () => resolve());
      socket.once('end', () => resolve());
    });
  }

  /** The watchdog's pid once it reported it; it is a member of the command's process group. */
  get pid(): number | undefined {
    return this.watchdogPid;
  }

  /**
   * Tells the watchdog to exit without signalling anyone; resolves once it has (its end of the pipe
   * closed). Safe to call more than once, and after its death.
   */
  dismiss(): Promise<void> {
    if (!this.dismissed && this.socket && !this.socket.destroyed) {
      this.dismissed = true;
      this.socket.end('\n');
    }
    return this.closed;
  }
}

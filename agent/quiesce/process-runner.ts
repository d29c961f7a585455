/**
 * The hooks' process adapter: runs a command to its end with its output captured (bounded), or holds a
 * client session open (psql, mariadb) and exchanges statements with it. Each command leads its own
 * process group, so an aborted hook is killed with whatever it started. Timeouts are the caller's: it
 * aborts the signal.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { checkExecutable } from '../../common/util/find-executable';

/** How much of a command's output a report keeps: its last characters, where the error usually is. */
export const OUTPUT_LIMIT = 2_000;

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr interleaved, trimmed, at most OUTPUT_LIMIT characters (the end of it). */
  output: string;
}

export interface RunOptions {
  signal: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/** A client process kept running with its stdin open, so that what it holds (a lock, a backup) stays held. */
export interface ClientSession {
  /**
   * Writes `input`, then resolves with the stdout printed until a line equal to `marker`. Rejects (and
   * kills the client) when the client exits first or `signal` aborts.
   */
  exchange(input: string, marker: string, signal: AbortSignal): Promise<string>;
  /** Closes stdin and waits for the client to exit; kills it once `signal` aborts. */
  close(signal: AbortSignal): Promise<RunResult>;
  /** Ends the client at once: closing its connection releases what it held. */
  kill(): void;
}

export interface ProcessRunner {
  /** Rejects when the command cannot be started or `signal` aborts (the command is then killed). */
  run(argv: readonly string[], options: RunOptions): Promise<RunResult>;
  /** Throws when the command cannot be started. */
  open(argv: readonly string[], options: { env?: NodeJS.ProcessEnv }): ClientSession;
}

/** A database client's environment: ours, `extra`, and the password read from `passwordFile` in `variable` (never on a command line). */
export function clientEnv(
  passwordFile: string | undefined,
  variable: string,
  extra: NodeJS.ProcessEnv = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (passwordFile) {
    try {
      env[variable] = fs.readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new Error(`cannot read the password file ${passwordFile} (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
  }
  return env;
}

/** Keeps the last OUTPUT_LIMIT characters of what it is given. */
class Tail {
  private text = '';
  private cut = false;
  add(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > 2 * OUTPUT_LIMIT) {
      this.text = this.text.slice(-OUTPUT_LIMIT);
      this.cut = true;
    }
  }
  toString(): string {
    const t = this.text.length > OUTPUT_LIMIT ? this.text.slice(-OUTPUT_LIMIT) : this.text;
    return `${this.cut || this.text.length > OUTPUT_LIMIT ? '…' : ''}${t.trim()}`;
  }
}

/** "exit 2: <output>", "killed by SIGKILL", for a hook's failure message. */
export function describeExit(r: RunResult): string {
  const how = r.exitCode !== null ? `exit ${r.exitCode}` : `killed by ${r.signal}`;
  return r.output ? `${how}: ${r.output}` : how;
}

function start(argv: readonly string[], env: NodeJS.ProcessEnv | undefined, stdin: 'ignore' | 'pipe'): ChildProcess {
  const cannot = checkExecutable(argv, env ?? process.env);
  if (cannot) throw new Error(`cannot run ${argv[0]}: ${cannot.code === 'ENOENT' ? 'not found' : 'not executable'}`);
  // Its own process group, so that killing it reaches what it started.
  return spawn(argv[0], argv.slice(1), { stdio: [stdin, 'pipe', 'pipe'], env: env ?? process.env, detached: true });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function exited(child: ChildProcess, output: Tail): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal, output: output.toString() }));
  });
}

/** Resolves with `work`, or rejects with the signal's reason (after `onAbort`) once it aborts. */
function abortable<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

export const childProcessRunner: ProcessRunner = {
  async run(argv, options) {
    const child = start(argv, options.env, 'ignore');
    const output = new Tail();
    child.stdout!.on('data', (c) => output.add(c));
    child.stderr!.on('data', (c) => output.add(c));
    return abortable(exited(child, output), options.signal, () => killGroup(child));
  },

  open(argv, options) {
    const child = start(argv, options.env, 'pipe');
    const errors = new Tail();
    child.stderr!.on('data', (c) => errors.add(c));
    // A client that exits while we write to it: the exit reports it, not an EPIPE.
    child.stdin!.on('error', () => undefined);
    let pending = '';
    let waiter: ((line: string) => void) | undefined;
    child.stdout!.on('data', (c) => {
      pending += c.toString();
      waiter?.('');
    });
    const end = exited(child, errors);
    end.catch(() => undefined);
    const whenEnded = end.then(
      (r) => Promise.reject(new Error(`the client ended (${describeExit(r)})`)),
      (err: Error) => Promise.reject(new Error(`the client could not run: ${err.message}`)),
    );
    whenEnded.catch(() => undefined);

    return {
      exchange(input, marker, signal) {
        const seen = new Promise<string>((resolve) => {
          const look = () => {
            const lines = pending.split('\n');
            const at = lines.indexOf(marker);
            if (at < 0) return;
            waiter = undefined;
            pending = lines.slice(at + 1).join('\n');
            resolve(lines.slice(0, at).join('\n').trim());
          };
          waiter = look;
          look();
        });
        child.stdin!.write(input);
        return abortable(Promise.race([seen, whenEnded]), signal, () => killGroup(child));
      },
      close(signal) {
        child.stdin!.end();
        return abortable(end, signal, () => killGroup(child));
      },
      kill() {
        killGroup(child);
      },
    };
  },
};

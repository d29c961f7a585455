/**
 * Runs a backup command as a child process in its own process group, so that the whole tree it starts
 * (restic and its ssh, a shell script and its pipes) can be signalled and stopped together. Used by the
 * guarded run shared by the agent and headroomctl.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Logger } from './log';

/** `inherit`: the child uses our stdin/stdout/stderr (exec, host-backup); `ignore`/`pipe` for the daemon. */
export type ChildStdio = 'inherit' | 'pipe' | 'ignore';

export interface ChildExit {
  /** The exit status, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What a shell would report: the code, 128 + signal number, 127 when the command was not found, 126 when it could not be run. */
  exitCode: number;
  /** Set when the command could not be started at all. */
  error?: Error;
}

export interface SpawnChildOptions {
  stdio?: ChildStdio;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log?: Logger;
}

export interface RunningChild {
  /** The child's pid, which is also its process group id; undefined when it could not be started. */
  readonly pid: number | undefined;
  readonly process: ChildProcess;
  /** Resolves once the child (the group leader) has exited. Never rejects. */
  readonly exited: Promise<ChildExit>;
  /** Sends a signal to the child's whole process group. Returns false when the group is already gone. */
  signalGroup(signal: NodeJS.Signals): boolean;
  /**
   * Stops the whole process group: SIGTERM, then SIGKILL if anything in the group is still alive after
   * `graceMs`. Resolves with the leader's exit once the leader has exited and the group is gone (or was
   * sent SIGKILL). Calling it again returns the same promise.
   */
  stop(graceMs: number): Promise<ChildExit>;
  /**
   * After the leader exited on its own: stops whatever it left running in its group (background jobs of a
   * script), the same way as stop(). Resolves true when there was something left to stop.
   */
  stopLeftovers(graceMs: number): Promise<boolean>;
}

/** How often to look whether a stopped group is gone. Short: stopping should not be slower than the tree. */
const GROUP_POLL_MS = 50;
/** How long to wait for a group to vanish after SIGKILL before giving up (processes in uninterruptible I/O). */
const AFTER_KILL_WAIT_MS = 5_000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** 128 + the signal's number, as shells report a process killed by a signal. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}

/**
 * True while any process of group `pgid` is alive. Zombies do not count: a reparented grandchild that
 * died but was not reaped yet (some container inits never reap) is harmless. Reads /proc on Linux;
 * elsewhere asks kill(-pgid, 0), which counts zombies too.
 */
export function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: a member exists that we may not signal; it is alive.
    return true;
  }
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return true;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/** Waits until group `pgid` is gone; resolves false when it is still alive after `timeoutMs`. */
async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (!processGroupAlive(pgid)) return true;
    if (performance.now() >= until) return false;
    await delay(Math.min(GROUP_POLL_MS, Math.max(1, until - performance.now())));
  }
}

/**
 * Starts `argv` (never through a shell) as the leader of a new process group. Throws an Error when argv
 * is empty; a command that cannot be started is reported through `exited` (exit code 127 or 126).
 */
export function spawnChild(argv: readonly string[], options: SpawnChildOptions = {}): RunningChild {
  if (argv.length === 0 || !argv[0]) throw new Error('no command to run');
  const child = spawn(argv[0], argv.slice(1), {
    stdio: options.stdio ?? 'inherit',
    env: options.env ?? process.env,
    cwd: options.cwd,
    // A new session and process group (setsid), so that signals to the group reach the whole tree and
    // the terminal's Ctrl-C reaches only us: we decide what the child gets.
    detached: true,
  });
  const pid = child.pid;
  const log = options.log;

  const exited = new Promise<ChildExit>((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      // Only spawn failures end here with no pid; a failed kill() of a running child also emits 'error'.
      if (child.pid !== undefined) return;
      const exitCode = error.code === 'ENOENT' ? 127 : 126;
      resolve({ code: exitCode, signal: null, exitCode, error });
    });
    child.once('exit', (code, signal) => {
      resolve({ code, signal, exitCode: code ?? (signal ? signalExitCode(signal) : 1) });
    });
  });

  const signalGroup = (signal: NodeJS.Signals): boolean => {
    if (pid === undefined) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false;
    }
  };

  // SIGTERM to the group, SIGKILL after the grace period if any member is still alive.
  const stopGroup = async (graceMs: number): Promise<void> => {
    if (pid === undefined) return;
    if (!signalGroup('SIGTERM')) return;
    if (await waitGroupGone(pid, graceMs)) return;
    log?.warn('child still running after SIGTERM; sending SIGKILL to its process group', { pid, graceMs });
    signalGroup('SIGKILL');
    if (!(await waitGroupGone(pid, AFTER_KILL_WAIT_MS))) {
      log?.error('process group still alive after SIGKILL (uninterruptible I/O?)', { pid });
    }
  };

  let stopping: Promise<ChildExit> | undefined;
  return {
    pid,
    process: child,
    exited,
    signalGroup,
    stop(graceMs: number) {
      stopping ??= stopGroup(graceMs).then(() => exited);
      return stopping;
    },
    async stopLeftovers(graceMs: number) {
      if (pid === undefined || !processGroupAlive(pid)) return false;
      log?.warn('the command exited but left processes running in its group; stopping them', { pid });
      await stopGroup(graceMs);
      return true;
    },
  };
}

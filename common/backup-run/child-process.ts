/**
 * Runs a backup command as a child process in its own process group, so that the whole tree it starts
 * (restic and its ssh, a shell script and its pipes) can be signalled and stopped together, and under a
 * watchdog in that group that stops the tree should we die without stopping it (common/backup-run/parent-watchdog.ts).
 * Used by the guarded run shared by the agent and headroomctl.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import { checkExecutable } from '../util/find-executable';
import type { Logger } from '../util/log';
import { WatchdogChannel, watchdogCommand } from './parent-watchdog';

/** Between SIGTERM and SIGKILL to a command's process group, ms, unless configured otherwise. */
export const DEFAULT_KILL_GRACE_MS = 10_000;

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
  /** How long the watchdog waits between SIGTERM and SIGKILL should we die, ms. Default 10000. */
  killGraceMs?: number;
}

export interface RunningChild {
  /** The child's pid, which is also its process group id; undefined when it could not be started. */
  readonly pid: number | undefined;
  /** The watchdog's pid (a member of the group) once it has reported it. */
  readonly watchdogPid?: number;
  /**
   * Resolves once watchdogPid is known, or it is clear there will be none; absent on a child without a
   * watchdog. Whoever freezes or stops the group (common/backup-run/budget/) waits for it, to leave the watchdog running.
   */
  readonly watchdogReady?: Promise<void>;
  /** Resolves once the child (the group leader) has exited. Never rejects. */
  readonly exited: Promise<ChildExit>;
  /** Sends a signal to the child's whole process group (the watchdog ignores it). Returns false when the group is already gone. */
  signalGroup(signal: NodeJS.Signals): boolean;
  /**
   * Stops the whole process group: SIGTERM, then SIGKILL if anything in the group is still alive after
   * `graceMs`. Resolves with the leader's exit once the leader has exited and the group is gone (or was
   * sent SIGKILL). Calling it again returns the same promise. Once the group is gone, the watchdog is
   * dismissed and has exited too.
   */
  stop(graceMs: number): Promise<ChildExit>;
  /**
   * After the leader exited on its own: stops whatever it left running in its group (background jobs of a
   * script), the same way as stop(). Resolves true when there was something left to stop. Call this (or
   * stop()) after every exit: the watchdog guards the group, leftovers included, until one of them has
   * cleared it.
   */
  stopLeftovers(graceMs: number): Promise<boolean>;
}

/** How often to look whether a stopped group is gone. Short: stopping should not be slower than the tree. */
const GROUP_POLL_MS = 50;
/** How long to wait for a group to vanish after SIGKILL before giving up (processes in uninterruptible I/O). */
const AFTER_KILL_WAIT_MS = 5_000;

/**
 * How long to wait for the watchdog's pid after the command exited, and for the watchdog to exit once
 * dismissed. Both take milliseconds (the pid is written before the command starts); this is a backstop.
 */
const WATCHDOG_WAIT_MS = 1_000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves when `promise` does, or after `ms` at the latest. */
async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** 128 + the signal's number, as shells report a process killed by a signal. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}

/**
 * True while any process of group `pgid` other than `exceptPid` (its watchdog) is alive. Zombies do not
 * count: a reparented grandchild that died but was not reaped yet (some container inits never reap) is
 * harmless. Reads /proc on Linux; elsewhere asks kill(-pgid, 0), which counts zombies and the watchdog too.
 */
export function processGroupAlive(pgid: number, exceptPid?: number): boolean {
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
    if (!/^\d+$/.test(name) || Number(name) === exceptPid) continue;
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

/** True while `pid` exists and is not a zombie. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  if (process.platform !== 'linux') return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Polls until `gone()` holds; resolves false when it still does not after `timeoutMs`. */
async function waitGone(gone: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (gone()) return true;
    if (performance.now() >= until) return false;
    await delay(Math.min(GROUP_POLL_MS, Math.max(1, until - performance.now())));
  }
}

/** How a command that could not be started ends: 127 when not found, else 126, with the reason. */
function notStartedExit(error: NodeJS.ErrnoException): ChildExit {
  const exitCode = error.code === 'ENOENT' ? 127 : 126;
  return { code: exitCode, signal: null, exitCode, error };
}

/** A child that was never started: `exited` reports why, as a failed spawn would. */
function notStarted(error: NodeJS.ErrnoException): RunningChild {
  const exited = Promise.resolve(notStartedExit(error));
  return {
    pid: undefined,
    exited,
    signalGroup: () => false,
    stop: () => exited,
    stopLeftovers: async () => false,
  };
}

/**
 * Starts `argv` (never through a shell's parsing) as the leader of a new process group, under the
 * watchdog. Throws an Error when argv is empty; a command that cannot be started is reported through
 * `exited` (exit code 127 or 126).
 */
export function spawnChild(argv: readonly string[], options: SpawnChildOptions = {}): RunningChild {
  if (argv.length === 0 || !argv[0]) throw new Error('no command to run');
  const env = options.env ?? process.env;
  const cannotStart = checkExecutable(argv, env, options.cwd);
  if (cannotStart) return notStarted(cannotStart);
  const stdio = options.stdio ?? 'inherit';
  const { file, args } = watchdogCommand(argv, options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
  const child = spawn(file, args, {
    // fd 3: the watchdog's pipe; the command itself runs with it closed.
    stdio: [stdio, stdio, stdio, 'pipe'],
    env,
    cwd: options.cwd,
    // A new session and process group (setsid), so that signals to the group reach the whole tree and
    // the terminal's Ctrl-C reaches only us: we decide what the child gets.
    detached: true,
  });
  const pid = child.pid;
  const log = options.log;
  const watchdog = new WatchdogChannel(child.stdio[3] as Socket | null);

  const leaderExited = new Promise<ChildExit>((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      // Only spawn failures end here with no pid; a failed kill() of a running child also emits 'error'.
      if (child.pid === undefined) resolve(notStartedExit(error));
    });
    child.once('exit', (code, signal) => {
      resolve({ code, signal, exitCode: code ?? (signal ? signalExitCode(signal) : 1) });
    });
  });
  // The watchdog reports its pid before the command starts; wait for it so that looking at the group after
  // the exit can tell the watchdog from a leftover.
  const exited = leaderExited.then(async (exit) => {
    await watchdogReported();
    return exit;
  });
  /** The watchdog's report, waited for at most WATCHDOG_WAIT_MS (it comes before the command starts). */
  const watchdogReported = () => withTimeout(watchdog.ready, WATCHDOG_WAIT_MS);
  /** Once the group is clear: the watchdog exits, and we wait (at most WATCHDOG_WAIT_MS) until it has. */
  const dismissWatchdog = async () => {
    // Its end of the pipe closes as it exits; it is gone from the process table a moment later.
    await withTimeout(watchdog.dismiss(), WATCHDOG_WAIT_MS);
    const watchdogPid = watchdog.pid;
    if (watchdogPid !== undefined) await waitGone(() => !processAlive(watchdogPid), WATCHDOG_WAIT_MS);
  };
  /** Nothing but the watchdog is left in the group. */
  const groupGone = () => pid === undefined || !processGroupAlive(pid, watchdog.pid);

  const signalGroup = (signal: NodeJS.Signals): boolean => {
    if (pid === undefined) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false;
    }
  };

  // SIGTERM to the group, SIGKILL after the grace period if any member but the watchdog is still alive.
  // The watchdog guards the group until it is gone (SIGKILL takes it too).
  const stopGroup = async (graceMs: number): Promise<void> => {
    if (pid === undefined) return;
    if (!signalGroup('SIGTERM')) return;
    await watchdogReported();
    if (await waitGone(groupGone, graceMs)) return dismissWatchdog();
    log?.warn('child still running after SIGTERM; sending SIGKILL to its process group', { pid, graceMs });
    signalGroup('SIGKILL');
    if (!(await waitGone(groupGone, AFTER_KILL_WAIT_MS))) {
      log?.error('process group still alive after SIGKILL (uninterruptible I/O?)', { pid });
    }
  };

  let stopping: Promise<ChildExit> | undefined;
  return {
    pid,
    get watchdogPid() {
      return watchdog.pid;
    },
    watchdogReady: watchdogReported(),
    exited,
    signalGroup,
    stop(graceMs: number) {
      stopping ??= stopGroup(graceMs).then(() => exited);
      return stopping;
    },
    async stopLeftovers(graceMs: number) {
      if (pid === undefined) return false;
      await watchdogReported();
      if (!processGroupAlive(pid, watchdog.pid)) {
        await dismissWatchdog();
        return false;
      }
      log?.warn('the command exited but left processes running in its group; stopping them', { pid });
      await stopGroup(graceMs);
      return true;
    },
  };
}

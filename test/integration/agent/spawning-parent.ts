/**
 * A process that starts a command through spawnChild and then does nothing, for tests that SIGKILL it:
 * `node spawning-parent.js KILL_GRACE_MS -- COMMAND [ARG...]`. Prints the command's pid, then the
 * watchdog's, one per line, once the watchdog has reported it.
 */
import { spawnChild } from '../../../common/backup-run/child-process';

const [grace, dashes, ...argv] = process.argv.slice(2);
if (dashes !== '--' || argv.length === 0) throw new Error('usage: spawning-parent KILL_GRACE_MS -- COMMAND [ARG...]');
const child = spawnChild(argv, { stdio: 'ignore', killGraceMs: Number(grace) });
process.stdout.write(`${child.pid}\n`);
const reported = setInterval(() => {
  if (child.watchdogPid === undefined) return;
  clearInterval(reported);
  process.stdout.write(`${child.watchdogPid}\n`);
}, 5);

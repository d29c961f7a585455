/**
 * The hooks directory: every executable regular file in it, in lexical order, run with the single argument
 * `freeze`, and with `thaw` in reverse order — the contract of qemu-guest-agent's fsfreeze-hook.d, whose
 * scripts can be linked here unchanged. Unlike qemu-ga's script, a non-zero exit (or the hook timeout)
 * fails the freeze, since an application that did not flush must not be reported as quiesced.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/util/log';
import type { FrozenHook, QuiesceHook } from './hook';
import { describeExit, ProcessRunner } from './process-runner';

/** Backup and package-manager leftovers, skipped as qemu-ga's fsfreeze-hook skips them. */
const IGNORED =
  /(~|\.(bak|orig|rpmnew|rpmorig|rpmsave|sample|dpkg-old|dpkg-new|dpkg-tmp|dpkg-dist|dpkg-bak|dpkg-backup|dpkg-remove))$/;

/** Runs `file ACTION`; resolves with its output, rejects with its exit status and output when it fails. */
async function runScript(
  runner: ProcessRunner,
  file: string,
  action: 'freeze' | 'thaw',
  signal: AbortSignal,
): Promise<string> {
  const result = await runner.run([file, action], { signal });
  if (result.exitCode !== 0) throw new Error(describeExit(result));
  return result.output || `${action} ok`;
}

function scriptHook(runner: ProcessRunner, file: string): QuiesceHook {
  return {
    name: path.basename(file),
    async freeze(signal): Promise<FrozenHook> {
      const message = await runScript(runner, file, 'freeze', signal);
      return { message, thaw: (thawSignal) => runScript(runner, file, 'thaw', thawSignal) };
    },
  };
}

/**
 * The hooks of directory `dir` as they are now. A missing directory has none; one that cannot be read is
 * an error. Files that are not executable are skipped with a log line, so that a forgotten chmod is seen.
 */
export async function listHooksDirectory(dir: string, runner: ProcessRunner, log?: Logger): Promise<QuiesceHook[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read the hooks directory ${dir}: ${(err as Error).message}`);
  }
  const hooks: QuiesceHook[] = [];
  // Byte order, as `LC_ALL=C ls` shows it: 10-db before 20-app whatever the locale.
  for (const name of names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    if (name.startsWith('.') || IGNORED.test(name)) continue;
    const file = path.join(dir, name);
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch {
      continue; // removed while we looked, or a dangling link
    }
    if (!stat.isFile()) continue;
    try {
      await fs.promises.access(file, fs.constants.X_OK);
    } catch {
      log?.info('skipping a quiesce hook that is not executable', { file });
      continue;
    }
    hooks.push(scriptHook(runner, file));
  }
  return hooks;
}

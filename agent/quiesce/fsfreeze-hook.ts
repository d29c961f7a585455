/**
 * The built-in filesystem hook: `fsfreeze --freeze MOUNT` flushes the filesystem and blocks every write
 * to it until `fsfreeze --unfreeze MOUNT`. One hook per configured mount point, named `fsfreeze:MOUNT`.
 */
import type { FrozenHook, QuiesceHook } from './hook';
import { describeExit, ProcessRunner } from './process-runner';

async function fsfreeze(
  runner: ProcessRunner,
  command: string,
  flag: '--freeze' | '--unfreeze',
  mount: string,
  signal: AbortSignal,
): Promise<void> {
  const result = await runner.run([command, flag, mount], { signal });
  if (result.exitCode !== 0) throw new Error(`fsfreeze ${flag} ${mount}: ${describeExit(result)}`);
}

/** How long the unfreeze after an aborted freeze may take. */
const UNFREEZE_AFTER_ABORT_MS = 10_000;

/** `command` is the fsfreeze binary (util-linux); a name is looked up in PATH. */
export function fsfreezeHook(runner: ProcessRunner, mount: string, command = 'fsfreeze'): QuiesceHook {
  return {
    name: `fsfreeze:${mount}`,
    async freeze(signal): Promise<FrozenHook> {
      try {
        await fsfreeze(runner, command, '--freeze', mount, signal);
      } catch (err) {
        // Killed on a timeout, the ioctl may still have frozen the filesystem: never leave it so. When it
        // had not, the unfreeze fails harmlessly (EINVAL); a failed freeze of a busy one is not aborted.
        if (signal.aborted)
          await fsfreeze(runner, command, '--unfreeze', mount, AbortSignal.timeout(UNFREEZE_AFTER_ABORT_MS)).catch(
            () => undefined,
          );
        throw err;
      }
      return {
        message: `froze ${mount}`,
        thaw: async (thawSignal) => {
          await fsfreeze(runner, command, '--unfreeze', mount, thawSignal);
          return `thawed ${mount}`;
        },
      };
    },
  };
}

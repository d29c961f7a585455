/**
 * One phase of `npm run bench:penalty`'s in-guest run, run by Node inside the VM (penalty-guest.ts copies
 * it there with the rest of bench/'s measuring files): starts the foreground in DIR, lets it warm up, and
 * measures it for a fixed time or while a shell command (the backup, plain or under headroom-agent exec)
 * runs. Prints the phase's result as one line of JSON after `result `.
 *
 *   node penalty-guest-run.js NAME DIR RATE WORKSET_MIB (--for MS | --run SHELL-TEXT)
 */
import { measure, runToEnd, startForegrounds } from './penalty-measure';

/** Connections open, JIT warm. */
const WARM_UP_MS = 2_000;

async function main(): Promise<void> {
  const [name, dir, rate, worksetMiB, how, what] = process.argv.slice(2);
  if (!what || (how !== '--for' && how !== '--run')) {
    throw new Error('usage: penalty-guest-run NAME DIR RATE WORKSET_MIB (--for MS | --run SHELL-TEXT)');
  }
  const foreground = await startForegrounds(dir, Number(rate), Number(worksetMiB));
  try {
    await new Promise((r) => setTimeout(r, WARM_UP_MS));
    const result = await measure(
      name,
      foreground,
      how === '--for' ? Number(what) : async () => ({ backupSeconds: await runToEnd(['sh', '-c', what]), notes: [] }),
    );
    process.stdout.write(`result ${JSON.stringify(result)}\n`);
  } finally {
    foreground.stop();
  }
}

main().catch((e) => {
  process.stderr.write(`penalty-guest-run: ${(e as Error).message}\n`);
  process.exit(1);
});

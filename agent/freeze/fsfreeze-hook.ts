/**
 * The script `headroom-agent install-fsfreeze-hook` puts in qemu-guest-agent's fsfreeze-hook.d: qemu-ga
 * runs /etc/qemu/fsfreeze-hook with `freeze` before it freezes the file systems and `thaw` after it thawed
 * them, which runs every executable there with the same argument, in a bare environment (no PATH). The
 * script runs this agent by absolute paths, with `freeze-notice`, which tells the daemon and never fails.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../common/util/atomic-file';

export const DEFAULT_FSFREEZE_HOOK_DIR = '/etc/qemu/fsfreeze-hook.d';
export const HOOK_FILE_NAME = 'headroom-agent';

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The hook script: `freeze` and `thaw` become freeze notices with `noticeArgs`; anything else is none of ours. */
export function hookScript(agent: readonly string[], noticeArgs: readonly string[]): string {
  const command = [...agent, 'freeze-notice', '"$1"', ...noticeArgs]
    .map((w) => (w === '"$1"' ? w : shellQuote(w)))
    .join(' ');
  // An agent removed without its hook: say so in qemu-ga's hook log, and let the freeze go on.
  const present = agent.map((file, i) => `[ ${i === 0 ? '-x' : '-r'} ${shellQuote(file)} ]`).join(' && ');
  return `#!/bin/sh
# Installed by \`headroom-agent install-fsfreeze-hook\`: tells the Headroom agent when qemu-guest-agent
# freezes or thaws this VM's file systems, so that guest backups wait for the thaw (at most a bound).
# It never fails the freeze: freeze-notice exits 0 when the agent is not running, and says why.
case "$1" in
  freeze|thaw) ;;
  *) exit 0 ;;
esac
${present} || { echo "headroom: ${agent.join(' ').replace(/["`$\\]/g, '')}: not installed any more: not reported" >&2; exit 0; }
exec ${command}
`;
}

/** Writes the script into `dir` (created if missing) as an executable (0755), replacing one there atomically. Returns its path. */
export function installFsfreezeHook(dir: string, script: string): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, HOOK_FILE_NAME);
  // Its dotted temporary name is not matched by the hook runner's "$FSFREEZE_D"/*: a freeze during the
  // install never runs a half-written script.
  writeFileAtomic(file, script, 0o755);
  return file;
}

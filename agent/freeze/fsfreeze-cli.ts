/**
 * The qemu-guest-agent commands of \`headroom-agent\`: \`freeze-notice\` (run by the hook) and
 * \`install-fsfreeze-hook\` (writes the hook), with their help and their exit code policy.
 */
import * as path from 'node:path';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { DEFAULT_FREEZE_HOLD_MS, DEFAULT_FREEZE_SOURCE, MAX_FREEZE_HOLD_MS } from '../../common/domain/freeze-hold';
import { type OptionSpecs, parse } from '../cli-args';
import { DEFAULT_CONFIG_PATH } from '../config';
import { DEFAULT_CONTROL_SOCKET } from './control-socket';
import { UsageError } from '../../common/util/usage-error';
import { freezeSourceProblem } from './freeze-state';
import { FREEZE_NOTICE_TIMEOUT_MS, sendFreezeNotice } from './freeze-notice';
import { DEFAULT_FSFREEZE_HOOK_DIR, HOOK_FILE_NAME, hookScript, installFsfreezeHook } from './fsfreeze-hook';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const FREEZE_NOTICE_HELP = `Usage: headroom-agent freeze-notice freeze|thaw [options]

Tells the running daemon (over its control socket) that the hypervisor's own tools froze or thawed this
VM's file systems: qemu-guest-agent's fsfreeze hook runs it (see install-fsfreeze-hook). The daemon tells
the coordinator, which holds the VM's guest backups until the thaw, at most --hold; its own scheduled
jobs wait as well.

Options:
  -s, --source NAME     who froze the VM, for the history (default ${DEFAULT_FREEZE_SOURCE})
      --hold DURATION   freeze: hold guest backups this long at most without a thaw (default
                        ${formatDuration(DEFAULT_FREEZE_HOLD_MS)}, at most ${formatDuration(MAX_FREEZE_HOLD_MS)})
      --socket PATH     the daemon's control socket (default: controlSocket in the configuration, else
                        ${DEFAULT_CONTROL_SOCKET})
  -c, --config FILE     read controlSocket from this file (default ${DEFAULT_CONFIG_PATH} when it exists)
  -h, --help            this help

Exit code: 0 when the daemon took the notice, and also when it could not be told (not running, no answer
within ${FREEZE_NOTICE_TIMEOUT_MS / 1000} s, refused): then the reason is on stderr. A hook that fails can fail the
hypervisor's freeze and with it the snapshot, for a reason that is Headroom's, not the guest's. 64 for a
usage error (an installation mistake, seen when installing).

Examples:
  headroom-agent freeze-notice freeze --source proxmox --hold 5m
  headroom-agent freeze-notice thaw
`;

export const INSTALL_HOOK_HELP = `Usage: headroom-agent install-fsfreeze-hook [options]

Writes DIR/${HOOK_FILE_NAME}, a POSIX sh script (mode 0755) that runs this agent's freeze-notice with
qemu-guest-agent's freeze/thaw argument, by absolute path (qemu-ga gives hooks no PATH). qemu-ga runs
/etc/qemu/fsfreeze-hook, which runs every executable in fsfreeze-hook.d, only when started with
--fsfreeze-hook or with fsfreeze-hook=/etc/qemu/fsfreeze-hook under [general] in /etc/qemu/qemu-ga.conf.
Run it again after moving the agent.

Options:
  -d, --dir DIR         the hook directory (default ${DEFAULT_FSFREEZE_HOOK_DIR})
  -s, --source NAME     passed to freeze-notice (default ${DEFAULT_FREEZE_SOURCE})
      --hold DURATION   passed to freeze-notice (default: the coordinator's, ${formatDuration(DEFAULT_FREEZE_HOLD_MS)})
      --socket PATH     passed to freeze-notice
  -c, --config FILE     passed to freeze-notice
  -h, --help            this help

Examples:
  headroom-agent install-fsfreeze-hook
  headroom-agent install-fsfreeze-hook --dir /etc/qemu/fsfreeze-hook.d --hold 10m
`;

/** --source and --hold as freeze-notice takes them, for it and for the hook that will run it. */
function freezeOptions(v: Record<string, string | undefined>): { source: string; holdMs: number } {
  const source = v.source ?? DEFAULT_FREEZE_SOURCE;
  const problem = freezeSourceProblem(source);
  if (problem) throw new UsageError(`--source: ${problem}`);
  let holdMs = 0;
  if (v.hold !== undefined) {
    try {
      holdMs = parseFlagDuration(v.hold);
    } catch (err) {
      throw new UsageError(`--hold: ${(err as Error).message}`);
    }
    if (holdMs < 1_000 || holdMs > MAX_FREEZE_HOLD_MS)
      throw new UsageError(`--hold: expected 1s to ${formatDuration(MAX_FREEZE_HOLD_MS)}, got ${v.hold}`);
  }
  return { source, holdMs };
}

export const FREEZE_OPTIONS: OptionSpecs = {
  source: { value: 'NAME', short: 's' },
  hold: { value: 'DURATION' },
  socket: { value: 'PATH' },
  config: { value: 'FILE', short: 'c' },
  help: { short: 'h' },
};

export const INSTALL_HOOK_OPTIONS: OptionSpecs = { ...FREEZE_OPTIONS, dir: { value: 'DIR', short: 'd' } };

export async function freezeNoticeCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, FREEZE_OPTIONS, { positionals: ['freeze|thaw'] });
  if (values.help) {
    io.out(FREEZE_NOTICE_HELP);
    return 0;
  }
  const [phase] = positionals;
  if (phase !== 'freeze' && phase !== 'thaw')
    throw new UsageError(`expected freeze or thaw, got ${phase === undefined ? 'nothing' : `"${phase}"`}`);
  const v = values as Record<string, string | undefined>;
  const { source, holdMs } = freezeOptions(v);
  await sendFreezeNotice(
    { frozen: phase === 'freeze', source, holdMs, socket: v.socket, config: v.config },
    (line) => io.out(`headroom-agent: ${line}\n`),
    (line) => io.err(`headroom-agent: ${line}\n`),
  );
  return 0;
}

/** `self`: how to run this agent from a bare environment (main.ts knows whether it is the single executable). */
export function installHookCommand(args: string[], io: CliIo, self: string[]): number {
  const { values } = parse(args, INSTALL_HOOK_OPTIONS);
  if (values.help) {
    io.out(INSTALL_HOOK_HELP);
    return 0;
  }
  const v = values as Record<string, string | undefined>;
  freezeOptions(v);
  const passed = (['source', 'hold', 'socket', 'config'] as const).flatMap((k) =>
    v[k] === undefined ? [] : [`--${k}`, k === 'socket' || k === 'config' ? path.resolve(v[k]!) : v[k]!],
  );
  const file = installFsfreezeHook(v.dir ?? DEFAULT_FSFREEZE_HOOK_DIR, hookScript(self, passed));
  io.out(`installed ${file}\n`);
  io.out(
    'qemu-ga runs it only with --fsfreeze-hook, or fsfreeze-hook=/etc/qemu/fsfreeze-hook under [general] in /etc/qemu/qemu-ga.conf\n',
  );
  return 0;
}

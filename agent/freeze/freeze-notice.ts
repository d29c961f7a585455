/**
 * `headroom-agent freeze-notice freeze|thaw`: tells the running daemon, over its control socket, that the
 * hypervisor's own tools froze or thawed this VM. Run by the fsfreeze hook (fsfreeze-hook.ts) while
 * qemu-ga waits to freeze, so it is quick and never fails: it gives up after FREEZE_NOTICE_TIMEOUT_MS, and a
 * daemon that cannot be told is said on stderr, not in the exit code (see main.ts for the policy).
 */
import * as fs from 'node:fs';
import { DEFAULT_CONFIG_PATH, loadAgentConfig } from '../config';
import { DEFAULT_CONTROL_SOCKET, controlRequest } from './control-socket';

/** Connect and answer together: the daemon answers at once, it does not wait for the coordinator. */
export const FREEZE_NOTICE_TIMEOUT_MS = 2_000;

export interface FreezeNoticeInput {
  frozen: boolean;
  source: string;
  holdMs: number;
  /** --socket: wins over the configuration. */
  socket?: string;
  /** --config, else the default configuration file when it exists. */
  config?: string;
}

/** Where the daemon listens: --socket, else the configuration's controlSocket, else the default. */
export function controlSocketPath(
  input: Pick<FreezeNoticeInput, 'socket' | 'config'>,
  warn: (line: string) => void,
): string {
  if (input.socket) return input.socket;
  const file = input.config ?? (fs.existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  if (!file) return DEFAULT_CONTROL_SOCKET;
  try {
    return loadAgentConfig(file).controlSocket ?? DEFAULT_CONTROL_SOCKET;
  } catch (err) {
    warn(`${(err as Error).message.split('\n')[0]}; trying ${DEFAULT_CONTROL_SOCKET}`);
    return DEFAULT_CONTROL_SOCKET;
  }
}

/**
 * Sends the notice. Resolves with whether the daemon took it; `say` gets the daemon's answer, `warn` why
 * it could not be told. Never rejects.
 */
export async function sendFreezeNotice(
  input: FreezeNoticeInput,
  say: (line: string) => void,
  warn: (line: string) => void,
): Promise<boolean> {
  const file = controlSocketPath(input, warn);
  try {
    const reply = await controlRequest(
      file,
      { freezeNotice: { frozen: input.frozen, source: input.source, holdMs: input.holdMs } },
      FREEZE_NOTICE_TIMEOUT_MS,
    );
    if (reply.ok) say(reply.message);
    else warn(`the agent refused the notice: ${reply.message}`);
    return reply.ok;
  } catch (err) {
    const lost = input.frozen
      ? 'the freeze is not reported: guest backups are not held off'
      : "the thaw is not reported: guest backups wait for the freeze's bound";
    warn(`${(err as Error).message}: ${lost}`);
    return false;
  }
}

/**
 * The daemon's side of its control socket: which path it listens on (agent.yaml `controlSocket`, else the
 * default, best effort), and what a request does. A freeze notice updates the daemon's FreezeState and is
 * passed to the coordinator on the session at once; the answer says whether the coordinator was reachable.
 */
import type { v1 } from '../../proto';
import { MAX_FREEZE_HOLD_MS } from '../../common/domain/freeze-hold';
import { ConfigError } from '../../common/util/config-error';
import type { Logger } from '../../common/util/log';
import type { AgentConfig } from '../config';
import {
  type ControlReply,
  type ControlRequest,
  DEFAULT_CONTROL_SOCKET,
  closeControlSocket,
  listenControlSocket,
} from './control-socket';
import { type FreezeState, freezeSourceProblem } from './freeze-state';
import { formatDuration } from '../../common/util/duration';

export interface ControlEndpoint {
  /** Resolves once listening, or once the default path was found unusable (logged); rejects, naming the file and key, when the configured path is. */
  ready: Promise<void>;
  close(): Promise<void>;
}

export interface ControlEndpointOptions {
  config: Pick<AgentConfig, 'file' | 'controlSocket'>;
  log: Logger;
  freeze: FreezeState;
  /** Sends a notice to the coordinator; true when the session is up. */
  report(notice: v1.FreezeNotice): boolean;
}

export function startControlEndpoint(options: ControlEndpointOptions): ControlEndpoint {
  const { config, log, freeze } = options;
  const file = config.controlSocket ?? DEFAULT_CONTROL_SOCKET;
  const handle = (request: ControlRequest): ControlReply => {
    const n = request.freezeNotice!;
    const problem = freezeSourceProblem(n.source);
    if (problem) return { ok: false, message: `freezeNotice.source: ${problem}` };
    // Past it the coordinator would refuse the notice, and end the session with it, on every reconnect.
    if (n.holdMs > MAX_FREEZE_HOLD_MS)
      return { ok: false, message: `freezeNotice.holdMs: at most ${MAX_FREEZE_HOLD_MS}, got ${n.holdMs}` };
    const notice = n.frozen ? freeze.freeze(n.source, n.holdMs) : freeze.thaw(n.source);
    log.info(n.frozen ? 'VM frozen by the hypervisor: guest jobs wait for the thaw' : 'VM thawed', {
      source: n.source,
      holdMs: notice.holdMs || undefined,
    });
    const told = options.report(notice);
    const what = n.frozen
      ? `freeze by ${n.source} noted (guest backups held for ${formatDuration(notice.holdMs ?? 0)} at most)`
      : `thaw by ${n.source} noted`;
    return {
      ok: true,
      message: told
        ? `${what}; coordinator told`
        : `${what}; the coordinator is not reachable now: it is told on reconnect`,
    };
  };
  let server: Awaited<ReturnType<typeof listenControlSocket>> | undefined;
  const ready = listenControlSocket(file, handle).then(
    (s) => {
      server = s;
      log.info('control socket listening', { path: file });
    },
    (err: Error) => {
      if (config.controlSocket !== undefined)
        throw new ConfigError(config.file, [{ key: 'controlSocket', message: err.message }]);
      log.warn(
        'no control socket: freeze notices from qemu-guest-agent cannot reach this agent (set controlSocket in the configuration)',
        { error: err.message },
      );
    },
  );
  return {
    ready,
    async close() {
      await ready.catch(() => undefined);
      if (server) await closeControlSocket(server, file);
      server = undefined;
    },
  };
}

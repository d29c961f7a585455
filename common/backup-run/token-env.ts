/**
 * The environment a backup command runs in: ours, plus the token it runs under, so that the backup tool
 * can hand the fencing number to storage that checks it (a target that refuses writes with a fencing
 * number lower than one it has seen stops a holder whose lease was taken over), or stop by the slot's end.
 */
import type { v1 } from '../../proto';
import { tokenKind } from '../../proto/enums';

/** What is set for the command, and what it means. Unix times are ms; 0 when there is none. */
export const TOKEN_ENV = {
  /** The token's id, as headroomctl shows it. */
  tokenId: 'HEADROOM_TOKEN_ID',
  /** Strictly increasing per host: a later holder always has a higher one. */
  fencing: 'HEADROOM_FENCING',
  /** GUEST or HYPERVISOR. */
  kind: 'HEADROOM_KIND',
  host: 'HEADROOM_HOST',
  vm: 'HEADROOM_VM',
  job: 'HEADROOM_JOB',
  /** When the command is expected to be done: the slot's start plus the expected duration. */
  slotEnd: 'HEADROOM_SLOT_END_UNIX_MS',
  /** When the backup window closes; 0 when the request named none. */
  windowEnd: 'HEADROOM_WINDOW_END_UNIX_MS',
} as const;

/**
 * `base` with the variables of `token` set. Without a token (the command runs without one because the
 * coordinator was unreachable) they are removed, so that a command never sees a token it does not hold,
 * e.g. one inherited from a headroom run that started us.
 */
export function tokenEnv(base: NodeJS.ProcessEnv, token: v1.Token__Output | undefined): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const name of Object.values(TOKEN_ENV)) delete env[name];
  if (!token) return env;
  return {
    ...env,
    [TOKEN_ENV.tokenId]: token.tokenId,
    [TOKEN_ENV.fencing]: String(token.fencing),
    [TOKEN_ENV.kind]: tokenKind.show(token.kind),
    [TOKEN_ENV.host]: token.host,
    [TOKEN_ENV.vm]: token.vm,
    [TOKEN_ENV.job]: token.job,
    [TOKEN_ENV.slotEnd]: String(token.slot?.expectedEndUnixMs ?? 0),
    [TOKEN_ENV.windowEnd]: String(token.slot?.windowEndUnixMs ?? 0),
  };
}

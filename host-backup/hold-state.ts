/**
 * The files through which `headroomctl hold` invocations talk to the background holder: the state file
 * (what the holder is doing: waiting, holding, lost, released), written only by the holder, and the
 * release request beside it, written only by `hold --release`. Parsing is pure; reads and writes are
 * small helpers (writes go through a rename, so a reader never sees half a file).
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../common/util/atomic-file';

/** waiting → held → released, or → lost (revoked, expired, fail-safe), or → failed (no token was granted). */
export type HoldPhase = 'waiting' | 'held' | 'lost' | 'released' | 'failed';

const PHASES: readonly HoldPhase[] = ['waiting', 'held', 'lost', 'released', 'failed'];

/** Phases after which the holder has exited (or is exiting) and nothing is held. */
export const FINAL_PHASES: ReadonlySet<HoldPhase> = new Set(['lost', 'released', 'failed']);

export interface HoldState {
  /** The holder's process id. */
  pid: number;
  phase: HoldPhase;
  host: string;
  vm: string;
  job: string;
  /** The token, once granted. */
  token?: { tokenId: string; fencing: number };
  /** When the token was granted (Unix ms), for the duration released with. */
  grantedAtUnixMs?: number;
  /** For people: why it was lost or failed, or what it was released with. */
  message?: string;
}

export interface ReleaseRequest {
  success: boolean;
  message: string;
}

export function releaseRequestFile(stateFile: string): string {
  return `${stateFile}.release`;
}

function field<T>(
  obj: Record<string, unknown>,
  key: string,
  type: 'string' | 'number',
  file: string,
  optional = false,
): T | undefined {
  const v = obj[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== type || (type === 'number' && !Number.isFinite(v)) || (type === 'string' && v === '' && !optional)) {
    throw new Error(
      `${file}: "${key}" must be a ${type === 'string' ? (optional ? 'string' : 'non-empty string') : 'number'}`,
    );
  }
  return v as T;
}

function object(text: string, file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not a headroomctl hold state file (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`${file}: expected a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Parses a state file's text; errors name the file and the key. */
export function parseHoldState(text: string, file: string): HoldState {
  const o = object(text, file);
  const phase = field<string>(o, 'phase', 'string', file)!;
  if (!PHASES.includes(phase as HoldPhase))
    throw new Error(`${file}: "phase" must be one of ${PHASES.join(', ')}, got "${phase}"`);
  const pid = field<number>(o, 'pid', 'number', file)!;
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${file}: "pid" must be a positive integer`);
  const state: HoldState = {
    pid,
    phase: phase as HoldPhase,
    host: field<string>(o, 'host', 'string', file)!,
    vm: field<string>(o, 'vm', 'string', file)!,
    job: field<string>(o, 'job', 'string', file)!,
  };
  const grantedAtUnixMs = field<number>(o, 'grantedAtUnixMs', 'number', file, true);
  if (grantedAtUnixMs !== undefined) state.grantedAtUnixMs = grantedAtUnixMs;
  const message = field<string>(o, 'message', 'string', file, true);
  if (message !== undefined) state.message = message;
  if (o.token !== undefined) {
    if (typeof o.token !== 'object' || o.token === null) throw new Error(`${file}: "token" must be an object`);
    const t = o.token as Record<string, unknown>;
    state.token = {
      tokenId: field<string>(t, 'tokenId', 'string', file)!,
      fencing: field<number>(t, 'fencing', 'number', file)!,
    };
  } else if (phase === 'held') {
    throw new Error(`${file}: "token" is required when the phase is held`);
  }
  return state;
}

/** Parses a release request's text. */
export function parseReleaseRequest(text: string, file: string): ReleaseRequest {
  const o = object(text, file);
  if (typeof o.success !== 'boolean') throw new Error(`${file}: "success" must be true or false`);
  return { success: o.success, message: field<string>(o, 'message', 'string', file, true) ?? '' };
}

/** `--outcome`: success or failure. */
export function parseOutcome(raw: string): boolean {
  if (raw === 'success') return true;
  if (raw === 'failure') return false;
  throw new Error(`expected success or failure, got "${raw}"`);
}

/** The file's text, or undefined when it does not exist. */
function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function readHoldState(file: string): HoldState | undefined {
  const text = readIfExists(file);
  return text === undefined ? undefined : parseHoldState(text, file);
}

export function readReleaseRequest(stateFile: string): ReleaseRequest | undefined {
  const file = releaseRequestFile(stateFile);
  const text = readIfExists(file);
  return text === undefined ? undefined : parseReleaseRequest(text, file);
}

/** Readers see the old state or the new one. */
export function writeJsonFile(file: string, value: HoldState | ReleaseRequest): void {
  writeFileAtomic(file, `${JSON.stringify(value)}\n`, 0o644);
}

/** Removes the state file and the release request; missing ones are fine. */
export function removeHoldFiles(stateFile: string): void {
  for (const f of [stateFile, releaseRequestFile(stateFile)]) fs.rmSync(f, { force: true });
}

/** Whether `pid` is a live process (a zombie, exited but not yet reaped, is not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "pid (comm) S …"; comm may hold spaces and parentheses, the state follows the last ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/**
 * Whether a command could be started, checked the way execvp() looks for it (a name with a slash is a
 * path, a bare name is searched in PATH). The command is started through the watchdog's shell, whose
 * failed `exec` would be just an exit code and a message on the command's stderr; checking first keeps
 * "could not start restic: spawn restic ENOENT" (exit 127) and EACCES (126) as Node reports them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** PATH when the environment has none, as libuv's execvp uses. */
const DEFAULT_PATH = '/usr/bin:/bin';

type Access = 'ok' | 'ENOENT' | 'EACCES';

function access(file: string): Access {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return 'ENOENT';
  }
  if (!stat.isFile()) return 'EACCES';
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return 'ok';
  } catch {
    return 'EACCES';
  }
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** The error Node's spawn() gives for a command it cannot start. */
export function spawnError(argv: readonly string[], code: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException & { spawnargs?: string[] } = new Error(`spawn ${argv[0]} ${code}`);
  error.code = code;
  const errno = (os.constants.errno as Record<string, number | undefined>)[code];
  if (errno !== undefined) error.errno = -errno;
  error.syscall = `spawn ${argv[0]}`;
  error.path = argv[0];
  error.spawnargs = argv.slice(1);
  return error;
}

/**
 * Undefined when `argv[0]` names an executable file (relative to `cwd`, or in `env.PATH`), else the error
 * spawn() would give: ENOENT when there is no such file (or no `cwd`), EACCES when there is one but it
 * cannot be executed.
 */
export function checkExecutable(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string = process.cwd(),
): NodeJS.ErrnoException | undefined {
  const file = argv[0];
  if (!isDirectory(cwd)) return spawnError(argv, 'ENOENT'); // as Node says when it cannot chdir
  if (file.includes('/')) {
    const found = access(path.resolve(cwd, file));
    return found === 'ok' ? undefined : spawnError(argv, found);
  }
  let denied = false;
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(':')) {
    const found = access(path.resolve(cwd, dir || '.', file));
    if (found === 'ok') return undefined;
    if (found === 'EACCES') denied = true;
  }
  return spawnError(argv, denied ? 'EACCES' : 'ENOENT');
}

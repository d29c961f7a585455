/**
 * The agent's quiescer as agent.yaml configures it. Hook order, thawed in reverse:
 *   1. postgresql, 2. mysql — databases flush and hold first, while their files can still be written;
 *   3. the hooks directory, in lexical order — qemu-ga also runs fsfreeze-hook.d before freezing
 *      filesystems, so scripts may still write (dump a cache, flush an application);
 *   4. fsfreeze, per mount point in the configured order — last, since after it nothing on those
 *      filesystems can be written.
 */
import type { Logger } from '../../common/util/log';
import type { QuiesceSettings } from '../config';
import { fsfreezeHook } from './fsfreeze-hook';
import type { HookList, QuiesceHook } from './hook';
import { HookQuiescer } from './hook-quiescer';
import { listHooksDirectory } from './hooks-directory';
import { mysqlHook } from './mysql-hook';
import { postgresqlHook } from './postgresql-hook';
import { childProcessRunner, ProcessRunner } from './process-runner';
import type { AutoThawListener } from './quiescer';

export function configuredHooks(settings: QuiesceSettings, runner: ProcessRunner, log?: Logger): HookList {
  const databases: QuiesceHook[] = [];
  if (settings.postgresql) databases.push(postgresqlHook(runner, settings.postgresql));
  if (settings.mysql) databases.push(mysqlHook(runner, settings.mysql, settings.hookTimeoutMs / 1000));
  const filesystems = settings.fsfreeze.map((mount) => fsfreezeHook(runner, mount));
  return async () => [...databases, ...(await listHooksDirectory(settings.hooksDir, runner, log)), ...filesystems];
}

export interface QuiescerDeps {
  onAutoThaw?: AutoThawListener;
  log?: Logger;
  /** Default: real child processes. */
  runner?: ProcessRunner;
}

/** The HookQuiescer for agent.yaml's `quiesce:` section. */
export function createQuiescer(settings: QuiesceSettings, deps: QuiescerDeps = {}): HookQuiescer {
  return new HookQuiescer({
    hooks: configuredHooks(settings, deps.runner ?? childProcessRunner, deps.log),
    defaultHoldMs: settings.defaultHoldMs,
    maxHoldMs: settings.maxHoldMs,
    hookTimeoutMs: settings.hookTimeoutMs,
    onAutoThaw: deps.onAutoThaw,
    log: deps.log,
  });
}

/**
 * What the quiesce tests run: a real coordinator, a real `headroom-agent run` whose hooks directory holds
 * scripts that append their calls ("<ns since epoch> <hook> freeze|thaw") to a calls file, and a reader of
 * that file. Hooks are executables the way qemu-ga's fsfreeze-hook.d scripts are.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../../helpers/coordinator-process';
import { type AgentProcess, startAgent, waitFor, writeConfig } from '../agent/processes';

export interface Call {
  atNs: bigint;
  who: string;
  what: string;
}

export interface HookSet {
  dir: string;
  callsFile: string;
  /** The calls so far, in the order they were appended. */
  calls(): Call[];
  /** `hook freeze` / `snapshot` … in order, without the times. */
  sequence(): string[];
  /** A line as a snapshot step (or any other step) writes it, for a command to append. */
  stepCommand(name: string): string;
}

/** A hooks directory whose hooks record their calls; `failing` hooks record the call, then exit 1 on freeze. */
export function hookSet(names: string[], failing: string[] = []): HookSet {
  const root = tempDir('headroom-quiesce-');
  const dir = path.join(root, 'hooks.d');
  const callsFile = path.join(root, 'calls');
  fs.mkdirSync(dir);
  for (const name of names) {
    const fail = failing.includes(name) ? '[ "$1" = freeze ] && exit 1\n' : '';
    fs.writeFileSync(
      path.join(dir, name),
      `#!/bin/sh\necho "$(date +%s%N) ${name} $1" >> '${callsFile}'\n${fail}exit 0\n`,
      { mode: 0o755 },
    );
  }
  const calls = (): Call[] => {
    let text = '';
    try {
      text = fs.readFileSync(callsFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [at, who, what = ''] = line.split(' ');
        return { atNs: BigInt(at), who, what };
      });
  };
  return {
    dir,
    callsFile,
    calls,
    sequence: () => calls().map((c) => `${c.who}${c.what ? ` ${c.what}` : ''}`),
    stepCommand: (name) => `echo "$(date +%s%N) ${name}" >> '${callsFile}'`,
  };
}

/** Starts `headroom-agent run` for `vm` with the hooks of `hooks` and the freeze's default bound `holdMs`. */
export async function startQuiesceAgent(
  address: string,
  vm: string,
  hooks: HookSet,
  holdMs: number,
): Promise<AgentProcess> {
  const config = writeConfig(
    [
      `coordinator: ${address}`,
      `vm: ${vm}`,
      'host: host-a',
      'quiesce:',
      `  hooksDir: ${hooks.dir}`,
      `  defaultHold: ${holdMs}ms`,
      'jobs: []',
    ].join('\n'),
  );
  const agent = startAgent(['run', '--config', config]);
  await waitFor(`the agent of ${vm} to connect`, () => /session up/.test(agent.stderr()), 15_000);
  return agent;
}

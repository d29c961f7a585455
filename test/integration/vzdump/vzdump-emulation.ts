/**
 * Runs a vzdump hook script the way vzdump does (PVE::VZDump::run_hook_script): `script PHASE` for the
 * job phases and `script PHASE MODE VMID` for a guest's, with an environment holding only STOREID,
 * DUMPDIR and the task's VMTYPE, HOSTNAME, TARGET and LOGFILE (vzdump localises %ENV, so not even PATH),
 * its output read until both pipes close as run_command does. Also installs the example hook, with its
 * config beside it, into a temporary directory, as a person would copy it to /usr/local/bin, and starts
 * whole vzdump jobs as their own process (vzdump-process.ts).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CTL_MAIN, tempDir } from '../../helpers/coordinator-process';

export const EXAMPLE_HOOK = path.resolve(
  __dirname,
  '..',
  '..',
  '..',
  '..',
  'examples',
  'vzdump',
  'headroom-vzdump-hook',
);

/** The job-wide options vzdump passes to every phase. */
export interface VzdumpJob {
  storage?: string;
  dumpdir?: string;
}

/** One guest's backup task, as vzdump describes it to backup-* phases. */
export interface VzdumpTask {
  mode: 'snapshot' | 'suspend' | 'stop';
  vmid: number;
  vmtype?: 'qemu' | 'lxc';
  hostname?: string;
  target?: string;
  logfile?: string;
}

/** A guest of the job: a VM whose QEMU's QMP socket is RUN_DIR/VMID.qmp, or a container's root directory. */
export type VzdumpGuest =
  | { vmid: number; vmtype: 'qemu'; hostname: string; node: string }
  | { vmid: number; vmtype: 'lxc'; hostname: string; rootDir: string };

/** The job file this process reads. */
export interface VzdumpJobFile {
  script: string;
  job: VzdumpJob & { dumpdir: string };
  /** Where the VMs' QMP sockets are (Proxmox: /var/run/qemu-server). */
  qemuRunDir: string;
  /** vzdump.conf: `bwlimit: KiB/s`, `ionice: N`. */
  vzdumpConf: string;
  guests: VzdumpGuest[];
}

export interface HookResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

export interface RunningHook {
  process: ChildProcess;
  output(): string;
  /** Resolves when the hook has exited and both its pipes are closed (vzdump waits for that). */
  done: Promise<HookResult>;
}

const running = new Set<ChildProcess>();

export function vzdumpEnv(job: VzdumpJob, task?: VzdumpTask): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (job.storage) env.STOREID = job.storage;
  if (job.dumpdir) env.DUMPDIR = job.dumpdir;
  if (task) {
    for (const key of ['vmtype', 'hostname', 'target', 'logfile'] as const) {
      if (task[key]) env[key.toUpperCase()] = task[key];
    }
  }
  return env;
}

export function startHook(script: string, phase: string, job: VzdumpJob, task?: VzdumpTask): RunningHook {
  const args = task ? [phase, task.mode, String(task.vmid)] : [phase];
  const child = spawn(script, args, { stdio: ['ignore', 'pipe', 'pipe'], env: vzdumpEnv(job, task) });
  running.add(child);
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const done = new Promise<HookResult>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, output });
    });
  });
  return { process: child, output: () => output, done };
}

export function runHook(script: string, phase: string, job: VzdumpJob, task?: VzdumpTask): Promise<HookResult> {
  return startHook(script, phase, job, task).done;
}

/** Kills the hook processes still running (by pid). */
export function killHooks(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

export interface InstalledHook {
  script: string;
  stateDir: string;
}

/**
 * Copies the example hook into a fresh directory with a config file beside it naming `settings`, and a
 * headroomctl launcher (this build, run by this node) for HEADROOM_CTL.
 */
export function installHook(settings: Record<string, string>): InstalledHook {
  const dir = tempDir('headroom-vzdump-');
  const script = path.join(dir, 'headroom-vzdump-hook');
  fs.copyFileSync(EXAMPLE_HOOK, script);
  fs.chmodSync(script, 0o755);
  const ctl = path.join(dir, 'headroomctl');
  fs.writeFileSync(ctl, `#!/bin/sh\nexec '${process.execPath}' '${CTL_MAIN}' "$@"\n`, { mode: 0o755 });
  const stateDir = path.join(dir, 'state');
  const lines = Object.entries({ HEADROOM_CTL: ctl, HEADROOM_STATE_DIR: stateDir, ...settings }).map(
    ([k, v]) => `${k}=${v}`,
  );
  fs.writeFileSync(path.join(dir, 'headroom-vzdump-hook.conf'), `# written by the test\n${lines.join('\n')}\n`);
  return { script, stateDir };
}

/** Kills the background holders that the hook left in `stateDir` (by the pids their state files name). */
export function killHolders(stateDir: string): void {
  if (!fs.existsSync(stateDir)) return;
  for (const f of fs.readdirSync(stateDir).filter((n) => n.endsWith('.json'))) {
    try {
      const { pid } = JSON.parse(fs.readFileSync(path.join(stateDir, f), 'utf8')) as { pid: number };
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone, or the file was being replaced
    }
  }
}

/**
 * A stand-in for a vzdump that dies mid-backup: a shell (in its own process group) that runs the hook's
 * backup-start, as vzdump does, then stays as vzdump would while it backs the guest up. Kill it with
 * `process.kill(-pid, 'SIGKILL')`.
 */
export function startDyingVzdump(
  script: string,
  job: VzdumpJob,
  t: VzdumpTask,
): { pid: number; started: Promise<string> } {
  const marker = 'backup-start returned';
  const child = spawn(
    '/bin/sh',
    ['-c', `"$0" backup-start ${t.mode} ${t.vmid} && echo '${marker}' && exec sleep 600`, script],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: vzdumpEnv(job, t),
      detached: true,
    },
  );
  let output = '';
  child.stderr!.on('data', (d) => (output += d));
  const started = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      output += d;
      if (output.includes(marker)) resolve(output);
    });
    child.once('exit', (code) =>
      reject(new Error(`the stand-in vzdump exited (${code}) before backup-start returned:\n${output}`)),
    );
  });
  started.catch(() => {});
  return { pid: child.pid!, started };
}

/** A vzdump job running as its own process (vzdump-process.ts), its task log on stdout. */
export interface RunningVzdump {
  pid: number;
  log(): string;
  done: Promise<{ code: number | null; log: string }>;
}

/** Starts the job `file` describes, in its own process group (kill it with `process.kill(-pid, 'SIGKILL')`). */
export function startVzdumpJob(file: VzdumpJobFile): RunningVzdump {
  const jobFile = path.join(tempDir('headroom-vzdump-job-'), 'job.json');
  fs.writeFileSync(jobFile, JSON.stringify(file));
  const child = spawn(process.execPath, [path.join(__dirname, 'vzdump-process.js'), jobFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const done = new Promise<{ code: number | null; log: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, log })),
  );
  return { pid: child.pid!, log: () => log, done };
}

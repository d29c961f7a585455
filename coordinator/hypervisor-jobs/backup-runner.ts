/**
 * The hypervisor backups the coordinator runs itself (AdminService.StartBackup/CancelBackup): each one a
 * child process, `headroomctl host-backup` pointed back at this coordinator with the VM's driver from
 * coordinator.yaml, so that the token, the budget and the driver's behaviour are those of a manual run.
 * Cancel is SIGTERM to the child: host-backup passes it on, and the qmp driver cancels its block jobs and
 * keeps the dirty bitmaps for the next run (the libvirt driver aborts libvirt's job and deletes its checkpoint). Runs are remembered in memory only (the catalog is the record
 * of what was backed up; the token history is the record of when).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { EXIT_TEMPFAIL } from '../../common/util/exit-codes';
import type { Logger } from '../../common/util/log';
import { driverArguments } from './backup-driver';
import { BackupRunConflictError, BackupRunNotFoundError, BackupRunnerUnavailableError } from '../domain/errors';
import type { HypervisorJob } from './hypervisor-schedule';

export type RunState = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

export interface BackupRunView {
  runId: string;
  vm: string;
  job: string;
  state: RunState;
  startedAtMs: number;
  endedAtMs?: number;
  exitCode?: number;
  message: string;
  argv: string[];
  outputTail: string;
  cancelRequested: boolean;
}

/** AdminService's backup calls: this process's runner, or in a cluster every member's (cluster/host-runs.ts). */
export interface BackupRuns {
  start(vm: string, options?: { full?: boolean }): BackupRunView | Promise<BackupRunView>;
  cancel(vm: string): BackupRunView | Promise<BackupRunView>;
  /** Newest first. */
  list(vm?: string): BackupRunView[] | Promise<BackupRunView[]>;
}

export interface BackupRunnerOptions {
  jobs: readonly HypervisorJob[];
  /** A VM's identity (placement-monitor.ts): the VMs of `jobs` and of the calls are matched by it. Default: itself. */
  resolve?: (vm: string) => string;
  /** The coordinator's own host: what host-backup asks a token on. */
  host: string;
  /**
   * headroomctl's global options that reach this coordinator (--coordinator, and the identity to call
   * with). @throws BackupRunnerUnavailableError when the coordinator cannot call itself.
   */
  selfOptions(): string[];
  /** The backup directory of a qmp or libvirt driver that names none (coordinator.yaml's backups.dir). */
  defaultTarget?: string;
  now(): number;
  log: Logger;
  /** headroomctl's main.js; default: the one beside this coordinator. */
  ctlMain?: string;
  /** Called after a run started, changed its message or ended (a cluster member publishes its runs then). */
  changed?(): void;
}

/** Kept per run: the last bytes of its output, enough for the error that ended it. */
const OUTPUT_TAIL_BYTES = 4096;
/** Ended runs remembered for ListBackupRuns. */
const ENDED_KEPT = 100;
/** How long stop() waits for children to end after SIGTERM. */
const STOP_WAIT_MS = 15_000;

interface Run extends BackupRunView {
  child?: ChildProcess;
  exited: Promise<void>;
}

export class BackupRunner {
  private readonly runs: Run[] = [];

  constructor(private readonly o: BackupRunnerOptions) {}

  /**
   * The job with a driver that backs the VM `vm` (an identity) up: the one named, else the first that lists
   * the VM, under any of its names; with the name the job lists it by, which is what its driver knows.
   */
  private jobOf(
    vm: string,
    name?: string,
  ): { job: HypervisorJob & { driver: NonNullable<HypervisorJob['driver']> }; listed: string } {
    const resolve = this.o.resolve ?? ((v: string) => v);
    for (const j of this.o.jobs) {
      if (!j.driver || (name !== undefined && j.name !== name)) continue;
      const listed = j.vms.find((v) => resolve(v) === vm);
      if (listed !== undefined) return { job: j as ReturnType<BackupRunner['jobOf']>['job'], listed };
    }
    throw new BackupRunnerUnavailableError(
      `no hypervisorJobs entry with a driver lists VM ${vm}${name === undefined ? '' : ` as job ${name}`} in coordinator.yaml`,
    );
  }

  /**
   * Starts a backup of `vm` now. A manual start gets the job's window from now; a planned one (`job` and
   * `windowEndMs` of its slot) keeps its slot's window end, so that its token request is the planned run's.
   */
  start(vm: string, options: { full?: boolean; job?: string; windowEndMs?: number } = {}): BackupRunView {
    const running = this.runs.find((r) => r.vm === vm && r.state === 'RUNNING');
    if (running) throw new BackupRunConflictError(vm, running.runId);
    const { job, listed } = this.jobOf(vm, options.job);
    const windowMs = options.windowEndMs === undefined ? job.windowMs : Math.max(1, options.windowEndMs - this.o.now());
    const argv = [
      process.execPath,
      this.o.ctlMain ?? path.join(__dirname, '..', '..', 'ctl', 'main.js'),
      ...this.o.selfOptions(),
      'host-backup',
      '--host',
      this.o.host,
      '--vm',
      listed,
      '--job',
      job.name,
      '--window',
      `${windowMs}ms`,
      '--expected-duration',
      `${job.expectedDurationMs}ms`,
      '--priority',
      String(job.priority),
      ...(job.target ? ['--shared-target', job.target] : []),
      ...driverArguments(job.driver, { vm: listed, defaultTarget: this.o.defaultTarget, full: options.full }),
    ];
    const run: Run = {
      runId: randomUUID(),
      vm,
      job: job.name,
      state: 'RUNNING',
      startedAtMs: this.o.now(),
      message: 'waiting for a HYPERVISOR token, then backing up',
      argv,
      outputTail: '',
      cancelRequested: false,
      exited: Promise.resolve(),
    };
    // Warnings only, as for a person at a terminal: the output tail is for what went wrong.
    const env = { ...process.env, HEADROOM_LOG: 'warn', HEADROOM_COORDINATOR: '' };
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    run.child = child;
    const keep = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      run.outputTail = (run.outputTail + text).slice(-OUTPUT_TAIL_BYTES);
      // host-backup's own progress line: from here on the backup itself runs.
      const granted = /granted token (\S+)/.exec(text);
      if (granted && run.state === 'RUNNING' && !run.cancelRequested) {
        run.message = `backing up under token ${granted[1]}`;
        this.o.changed?.();
      }
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    run.exited = new Promise<void>((resolve) => {
      const end = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (run.state !== 'RUNNING') return resolve();
        run.child = undefined;
        run.endedAtMs = this.o.now();
        run.exitCode = code ?? -1;
        run.state = code === 0 ? 'SUCCEEDED' : run.cancelRequested ? 'CANCELLED' : 'FAILED';
        run.message = error
          ? `could not start headroomctl: ${error.message}`
          : code === 0
            ? 'done'
            : `${run.cancelRequested ? 'cancelled: ' : ''}host-backup ended with ${signal ? `signal ${signal}` : `exit ${code}`}${code === EXIT_TEMPFAIL ? ' (no token, or the token was lost, or the jobs were cancelled)' : ''}`;
        this.o.log.info('backup run ended', { runId: run.runId, vm, state: run.state, exitCode: run.exitCode });
        this.forgetOld();
        this.o.changed?.();
        resolve();
      };
      child.once('error', (err) => end(null, null, err));
      child.once('close', (code, signal) => end(code, signal));
    });
    this.runs.push(run);
    this.o.log.info('backup run started', { runId: run.runId, vm, job: job.name, pid: child.pid });
    this.o.changed?.();
    return view(run);
  }

  /** Asks the VM's running backup to stop (SIGTERM); it ends as CANCELLED once the child is gone. */
  cancel(vm: string): BackupRunView {
    const run = this.runs.find((r) => r.vm === vm && r.state === 'RUNNING');
    if (!run) throw new BackupRunNotFoundError(vm);
    run.cancelRequested = true;
    run.message = 'cancelling: SIGTERM sent';
    run.child?.kill('SIGTERM');
    this.o.changed?.();
    return view(run);
  }

  /** Newest first. */
  list(vm?: string): BackupRunView[] {
    return this.runs
      .filter((r) => vm === undefined || r.vm === vm)
      .reverse()
      .map(view);
  }

  /** SIGTERM to every running child, then waits (bounded) for them to end: no backup outlives its coordinator unseen. */
  async stop(): Promise<void> {
    const running = this.runs.filter((r) => r.state === 'RUNNING');
    for (const r of running) {
      r.cancelRequested = true;
      r.child?.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(running.map((r) => r.exited)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }

  private forgetOld(): void {
    const ended = this.runs.filter((r) => r.state !== 'RUNNING');
    for (const r of ended.slice(0, Math.max(0, ended.length - ENDED_KEPT))) this.runs.splice(this.runs.indexOf(r), 1);
  }
}

function view(r: Run): BackupRunView {
  const { child: _child, exited: _exited, ...rest } = r;
  return { ...rest, argv: [...r.argv] };
}

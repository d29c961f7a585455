/**
 * Budgets without a usable cgroup: everything is done to the backup's process group with signals and
 * priorities, which any Linux guest allows.
 * - CPU: nice 19, and SIGSTOP/SIGCONT duty cycles (duty-cycle.ts) when the budget is below the guest's cores.
 * - Pause: SIGSTOP to the group, which stays stopped until resume; SIGKILL still works on it.
 * - I/O: only `ionice -c 2 -n 7` (best-effort, lowest priority), and only the bfq scheduler honours it.
 *   There is no byte-rate limit without cgroups; the detail of the BudgetReport says so.
 * The watchdog in the group is sent SIGCONT right after each SIGSTOP: it must stay able to stop the group
 * should the agent die. Processes that left the group (setsid) escape all of this.
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import { checkExecutable } from '../../util/find-executable';
import type { Logger } from '../../util/log';
import { BlockDevice, wholeDisks } from './block-devices';
import { DutyCycle } from './duty-cycle';
import { Budget, EnforcedGroup, EnforcementMechanism, Enforcer, NO_LIMIT, Usage } from './enforcer';
import { groupMembers, GroupMembers, ProcessUsage, ProcReader, realProc } from './process-usage';

/** The niceness of a CPU-limited backup: the lowest priority, so that in its running phases the VM's own work still goes first. */
const LIMITED_NICE = 19;
/** How long ionice may take before we give up on it, ms. */
const IONICE_TIMEOUT_MS = 2_000;

export interface SignalsOptions {
  log: Logger;
  proc?: ProcReader;
  /** process.kill by default; a negative pid is a process group. */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
  /** os.setPriority by default (on Linux it takes a thread id). */
  setNice?: (tid: number, nice: number) => void;
  /** os.getPriority by default. */
  getNice?: (pid: number) => number;
  /**
   * Sets the I/O priority of every thread of a process group: best-effort 7 (`lowest`), or back to the
   * default. Runs `ionice -P` by default; undefined when ionice is not installed. Throws when it fails.
   */
  ionice?: ((pgid: number, lowest: boolean) => void) | undefined;
  /** The guest's cores; os.availableParallelism() by default. */
  cores?: number;
  /** Default /sys/block. */
  sysBlock?: string;
  periodMs?: number;
}

/** ionice from util-linux, when it is installed. `-P` reaches every thread of every process in the group. */
function systemIonice(): SignalsOptions['ionice'] {
  if (checkExecutable(['ionice'], process.env)) return undefined;
  return (pgid, lowest) => {
    const priority = lowest ? ['-c', '2', '-n', '7'] : ['-c', '0'];
    // Synchronous: it takes a few ms, and the priority must be in place before the next change to it.
    execFileSync('ionice', ['-t', ...priority, '-P', String(pgid)], { stdio: 'ignore', timeout: IONICE_TIMEOUT_MS });
  };
}

/** What ionice can do for I/O on these disks. */
function ioNote(ionice: boolean, disks: BlockDevice[]): string {
  if (!ionice) return 'I/O not limited: no byte-rate limit without cgroups, and ionice is not installed';
  const deaf = disks.filter((d) => d.scheduler !== undefined && d.scheduler !== 'bfq');
  const ignored =
    deaf.length > 0
      ? `, which the I/O scheduler of ${deaf.map((d) => `${d.name} (${d.scheduler})`).join(', ')} ignores`
      : '';
  return `I/O: ionice best-effort 7 only, no byte-rate limit without cgroups${ignored}`;
}

/** The signals mechanism; it is always available on Linux. */
export function signalsMechanism(o: SignalsOptions): EnforcementMechanism {
  const ionice = 'ionice' in o ? o.ionice : systemIonice();
  const note = ioNote(ionice !== undefined, wholeDisks(o.sysBlock));
  return {
    enforcement: 'SIGNALS',
    detail: '',
    enforce: (group) => new SignalsEnforcer(group, { ...o, ionice }, note),
  };
}

class SignalsEnforcer implements Enforcer {
  readonly enforcement = 'SIGNALS' as const;
  readonly detail: string;
  private readonly proc: ProcReader;
  private readonly kill: (pid: number, signal: NodeJS.Signals) => void;
  private readonly processes: ProcessUsage;
  private readonly cycle: DutyCycle;
  private readonly cores: number;
  /** The niceness the command started with, to go back to when its CPU limit is lifted. */
  private readonly originalNice: number;
  private budget: Budget = NO_LIMIT;
  private paused = false;
  private ioniced = false;

  constructor(
    private readonly group: EnforcedGroup,
    private readonly o: SignalsOptions,
    ioNote: string,
  ) {
    this.proc = o.proc ?? realProc;
    this.kill = o.kill ?? ((pid, signal) => process.kill(pid, signal));
    this.cores = o.cores ?? os.availableParallelism();
    const members = new GroupMembers(group.pgid, () => group.exempt(), this.proc);
    this.processes = new ProcessUsage(() => members.list(), this.proc);
    this.cycle = new DutyCycle({
      setRunning: (running) => this.signalGroup(running ? 'SIGCONT' : 'SIGSTOP'),
      cpuSeconds: () => this.processes.sample().cpuSeconds,
      periodMs: o.periodMs,
    });
    let nice = 0;
    try {
      nice = (o.getNice ?? os.getPriority)(group.pgid);
    } catch {
      // gone already: nothing to restore
    }
    this.originalNice = nice;
    this.detail = `signals on process group ${group.pgid}: nice ${LIMITED_NICE} and SIGSTOP/SIGCONT duty cycles for CPU, SIGSTOP to pause; ${ioNote}`;
  }

  apply(budget: Budget): void {
    const cpuLimited = budget.cpuPercent > 0;
    if (cpuLimited !== this.budget.cpuPercent > 0) this.renice(cpuLimited ? LIMITED_NICE : this.originalNice);
    const ioLimited = budget.ioBytesPerSec > 0;
    if (ioLimited !== this.ioniced && this.o.ionice) {
      try {
        this.o.ionice(this.group.pgid, ioLimited);
        this.ioniced = ioLimited;
      } catch (err) {
        this.o.log.warn('ionice failed; the backup keeps its I/O priority', {
          pgid: this.group.pgid,
          error: err as Error,
        });
      }
    }
    this.budget = { ...budget };
    if (!this.paused) this.cycleFor(budget);
  }

  pause(): void {
    this.cycle.stop();
    this.signalGroup('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.signalGroup('SIGCONT');
    this.cycleFor(this.budget);
  }

  release(): void {
    this.cycle.stop();
    this.paused = false;
    this.signalGroup('SIGCONT');
  }

  usage(): Usage {
    return this.processes.sample();
  }

  async close(): Promise<void> {
    this.release();
  }

  /** Cycles when the budget is below what the guest's cores could give the group; else lets it run. */
  private cycleFor(budget: Budget): void {
    if (budget.cpuPercent > 0 && budget.cpuPercent < 100 * this.cores) this.cycle.start(budget.cpuPercent);
    else this.cycle.stop();
  }

  /** Signals the whole group; the watchdog is let go again at once after a SIGSTOP. A group that is gone is no error. */
  private signalGroup(signal: NodeJS.Signals): void {
    try {
      this.kill(-this.group.pgid, signal);
    } catch {
      return; // ESRCH: the group is gone
    }
    const exempt = this.group.exempt();
    if (signal === 'SIGSTOP' && exempt !== undefined) {
      try {
        this.kill(exempt, 'SIGCONT');
      } catch {
        // the watchdog is gone: it was dismissed
      }
    }
  }

  /** Sets the niceness of every thread of every member (setpriority takes one thread on Linux). */
  private renice(nice: number): void {
    const setNice = this.o.setNice ?? os.setPriority;
    for (const pid of groupMembers(this.group.pgid, this.group.exempt(), this.proc)) {
      const tids = this.proc.list(`${pid}/task`);
      for (const tid of tids.length > 0 ? tids.map(Number) : [pid]) {
        try {
          setNice(tid, nice);
        } catch {
          // exited meanwhile
        }
      }
    }
  }
}

/**
 * A /proc made of strings, for the tests of what reads it (process-usage.ts, signals.ts): processes with
 * their group, parent, CPU ticks and I/O bytes, which the test changes between samples.
 */
import type { ProcReader } from '../../../../../common/backup-run/budget/process-usage';

export interface FakeProcess {
  pgrp: number;
  ppid?: number;
  /** utime + stime + cutime + cstime, in ticks (1/100 s). */
  ticks?: number;
  /** read_bytes. */
  ioBytes?: number;
  /** write_bytes and cancelled_write_bytes. */
  written?: number;
  cancelled?: number;
  state?: string;
  startTicks?: number;
  threads?: number[];
  comm?: string;
}

export class FakeProc implements ProcReader {
  readonly processes = new Map<number, FakeProcess>();

  set(pid: number, p: FakeProcess): this {
    this.processes.set(pid, p);
    return this;
  }

  read(path: string): string | undefined {
    const [pidText, file] = path.split('/');
    const p = this.processes.get(Number(pidText));
    if (!p) return undefined;
    if (file === 'stat') {
      const t = p.ticks ?? 0;
      // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime prio nice threads itreal starttime
      return `${pidText} (${p.comm ?? 'sh'}) ${p.state ?? 'R'} ${p.ppid ?? 1} ${p.pgrp} ${p.pgrp} 0 -1 0 0 0 0 0 ${t} 0 0 0 20 0 1 0 ${p.startTicks ?? 100} 0 0\n`;
    }
    if (file === 'io')
      return `rchar: 1\nwchar: 1\nsyscr: 1\nsyscw: 1\nread_bytes: ${p.ioBytes ?? 0}\nwrite_bytes: ${p.written ?? 0}\ncancelled_write_bytes: ${p.cancelled ?? 0}\n`;
    return undefined;
  }

  list(path = ''): string[] {
    if (path === '') return ['self', 'stat', ...[...this.processes.keys()].map(String)];
    const m = /^(\d+)\/task$/.exec(path);
    const p = m ? this.processes.get(Number(m[1])) : undefined;
    return p ? (p.threads ?? [Number(m![1])]).map(String) : [];
  }
}

/**
 * One cgroup directory (v1 or v2): its control files, its member processes, creating and removing it.
 * Writes that the kernel refuses become EnforcementErrors naming the file and the errno.
 */
import * as fs from 'node:fs';
import { EnforcementError } from './enforcer';

/** How often to look whether a group is empty before removing it. */
const EMPTY_POLL_MS = 50;

/** Removes a cgroup directory; cgroupfs takes the control files with it. Replaced for plain directories in tests. */
export type RemoveDir = (path: string) => void;

export const rmdir: RemoveDir = (p) => fs.rmdirSync(p);

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class CgroupDir {
  constructor(
    readonly path: string,
    private readonly removeDir: RemoveDir = rmdir,
  ) {}

  /** Creates the directory (an existing one is reused). Throws EnforcementError. */
  static create(path: string, removeDir?: RemoveDir): CgroupDir {
    try {
      fs.mkdirSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new EnforcementError('cannot create the cgroup', path, code);
    }
    return new CgroupDir(path, removeDir);
  }

  file(name: string): string {
    return `${this.path}/${name}`;
  }

  /** Writes `value` to control file `name`. Throws EnforcementError. */
  write(name: string, value: string): void {
    try {
      fs.writeFileSync(this.file(name), value);
    } catch (err) {
      throw new EnforcementError(`cannot write "${value}"`, this.file(name), (err as NodeJS.ErrnoException).code);
    }
  }

  /** The contents of control file `name`, or undefined when it cannot be read. */
  read(name: string): string | undefined {
    try {
      return fs.readFileSync(this.file(name), 'utf8');
    } catch {
      return undefined;
    }
  }

  has(name: string): boolean {
    return fs.existsSync(this.file(name));
  }

  /** The processes in the group (cgroup.procs). */
  procs(): number[] {
    return (this.read('cgroup.procs') ?? '')
      .split('\n')
      .filter((l) => /^\d+$/.test(l.trim()))
      .map(Number);
  }

  /** Moves process `pid` (all its threads) into the group; a process that is gone already is no error. Throws EnforcementError. */
  adopt(pid: number): void {
    try {
      fs.writeFileSync(this.file('cgroup.procs'), String(pid));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH')
        throw new EnforcementError(`cannot move process ${pid} into the cgroup`, this.file('cgroup.procs'), code);
    }
  }

  /** Removes the directory; false when it cannot be removed (processes left: EBUSY). */
  remove(): boolean {
    try {
      this.removeDir(this.path);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }

  /** Waits (at most `timeoutMs`) for the group to have no processes, then removes it; false when it could not. */
  async removeWhenEmpty(timeoutMs: number): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (this.procs().length > 0 && performance.now() < until) await delay(EMPTY_POLL_MS);
    return this.remove();
  }
}
